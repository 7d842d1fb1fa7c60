"""The delivery process: one sender per outbox file, restarted if it dies, and the inline fallback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from app.delivery_process import DeliveryProcess, SenderLock
from app.outbox import SqliteOutbox
from app.settings import UsageSettings, load_usage_settings
from app.usage_logger import _PROXY_SupabaseUsageLogger
from tests.harness import SUPABASE_KEY, Edge


@pytest.fixture
def settings(tmp_path: Path, edge: Edge, monkeypatch: pytest.MonkeyPatch) -> UsageSettings:
    # The child reads the environment, as it does under `python -m app`.
    monkeypatch.setenv("SUPABASE_LITELLM_USAGE_URL", edge.url)
    monkeypatch.setenv("SUPABASE_ANON_KEY", SUPABASE_KEY)
    monkeypatch.setenv("USAGE_SPOOL_PATH", str(tmp_path / "spool" / "usage.db"))
    monkeypatch.setenv("USAGE_RETRY_MAX_S", "0.5")
    monkeypatch.setenv("LOG_FORMAT", "json")
    return load_usage_settings()


async def put(settings: UsageSettings, ids: list[str]) -> None:
    outbox = SqliteOutbox(settings.usage_spool_path, 1000)
    for event_id in ids:
        await outbox.put(event_id, json.dumps({"event_id": event_id}).encode())
    outbox.close()


def wait_for_events(edge: Edge, count: int) -> set[str]:
    return {e["body"]["event_id"] for e in edge.wait_for(count, timeout=20)}


def test_sender_lock_is_exclusive(tmp_path: Path) -> None:
    first, second = SenderLock(tmp_path / "o.db"), SenderLock(tmp_path / "o.db")
    assert first.try_acquire() and not second.try_acquire()
    assert second.held_by_someone()
    first.release()
    assert not second.held_by_someone() and second.try_acquire()
    second.release()


def test_the_process_delivers_restarts_after_a_crash_and_stops_cleanly(settings: UsageSettings, edge: Edge) -> None:
    asyncio.run(put(settings, ["a", "b"]))
    process = DeliveryProcess(settings)
    process.start()
    try:
        assert SenderLock(settings.usage_spool_path).held_by_someone()
        assert wait_for_events(edge, 2) == {"a", "b"}
        assert process._proc is not None
        crashed = process._proc.pid
        os.kill(crashed, signal.SIGKILL)
        asyncio.run(put(settings, ["c"]))
        assert wait_for_events(edge, 3) == {"a", "b", "c"}
        assert process._proc.pid != crashed, "the watcher started a new delivery process"
    finally:
        assert process.stop(2) == 0
    assert not SenderLock(settings.usage_spool_path).held_by_someone()


def test_stop_with_the_edge_failing_leaves_events_in_the_outbox(settings: UsageSettings, edge: Edge) -> None:
    edge.control(status=503)
    asyncio.run(put(settings, ["x", "y"]))
    process = DeliveryProcess(settings)
    process.start()
    time.sleep(0.5)
    began = time.monotonic()
    assert process.stop(1) == 0
    assert time.monotonic() - began < 6
    outbox = SqliteOutbox(settings.usage_spool_path, 1000)
    assert asyncio.run(outbox.stats()).depth == 2


async def test_a_worker_sends_inline_only_when_no_process_holds_the_lock(settings: UsageSettings) -> None:
    other = SenderLock(settings.usage_spool_path)
    assert other.try_acquire()
    logger = _PROXY_SupabaseUsageLogger(settings)
    logger.ensure_delivery()
    assert (await logger.status())["sends_inline"] is False
    other.release()
    logger.ensure_delivery()
    assert (await logger.status())["sends_inline"] is True
    assert SenderLock(settings.usage_spool_path).held_by_someone()
    await logger.shutdown()
    assert not SenderLock(settings.usage_spool_path).held_by_someone()
