"""Counters for one worker process, reported by the status route and the backlog summary.

Kept off the logger's public attributes on purpose: LiteLLM keys callback
deduplication on a logger's public str/int/bool attributes, so a public
counter would make the same logger look like a new one after every event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class UsageStats:
    """What this worker did with events; delivery outcomes are counted in the outbox itself."""

    written: int = 0
    skipped: int = 0
    refused: int = 0
    duplicates: int = 0
    restorations: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
