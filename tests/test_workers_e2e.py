"""End to end: NUM_WORKERS=2 under concurrent load, both workers sharing one outbox file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.registration import CALLBACK_NAME
from tests.harness import Edge, Process, proxy_config, registered_lines, start_proxy

pytestmark = pytest.mark.e2e

CALLS = 60


def test_two_workers_each_register_and_meter_each_call_once(upstream: Process, edge: Edge, tmp_path: Path) -> None:
    proxy = start_proxy(
        proxy_config(upstream.url, callbacks=[CALLBACK_NAME]), edge.url, workdir=tmp_path, NUM_WORKERS="2"
    )
    try:
        client = proxy.client()

        def call(i: int) -> str:
            response = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}]
            )
            return response.id

        with ThreadPoolExecutor(max_workers=8) as pool:
            request_ids = set(pool.map(call, range(CALLS)))
        events = edge.wait_for(CALLS, settle=2.0)
        assert len(events) == CALLS, f"{len(events)} events for {CALLS} calls"
        assert {e["body"]["request_id"] for e in events} == request_ids
        assert len({e["body"]["event_id"] for e in events}) == CALLS
        # Each worker imported the app itself and registered its own logger.
        after_startup = [line for line in registered_lines(proxy.process) if line["stage"] == "after proxy startup"]
        assert len({line["pid"] for line in after_startup}) == 2
        assert all(line["callbacks"].count(CALLBACK_NAME) == 1 for line in after_startup)
    finally:
        assert proxy.stop() == 0
