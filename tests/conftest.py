"""Shared fixtures. Set before anything imports LiteLLM: skip the remote price-map fetch."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator

import pytest

from tests.harness import Edge, Process, start_edge, start_upstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[Process]:
    proc = start_upstream()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def edge_server() -> Iterator[Edge]:
    edge = start_edge()
    yield edge
    edge.process.stop()


@pytest.fixture
def edge(edge_server: Edge) -> Edge:
    """The session's edge function, emptied and answering 200."""
    edge_server.reset()
    return edge_server
