"""The callback itself: what it stores, what it refuses, and that it never raises into LiteLLM."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app import usage_logger as usage_logger_module
from app.outbox import MemoryOutbox, OutboxUnavailableError, PutResult
from app.settings import UsageSettings
from app.usage_logger import SupabaseUsageLogger, _PROXY_SupabaseUsageLogger

KWARGS: dict[str, Any] = {
    "model": "gpt-4o",
    "litellm_call_id": "call-1",
    "standard_logging_object": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "response_cost": 0.1},
}


def make_logger(tmp_path: Path, **overrides: Any) -> SupabaseUsageLogger:
    values: dict[str, Any] = {
        "supabase_litellm_usage_url": "https://proj.supabase.co/functions/v1/litellm-usage",
        "supabase_anon_key": "anon-key-123456",
        "usage_spool_path": tmp_path / "spool" / "o.db",
    }
    values.update(overrides)
    return _PROXY_SupabaseUsageLogger(UsageSettings(**values))


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM outbox ORDER BY seq")]


async def test_success_and_failure_are_stored_durably_before_the_callback_returns(tmp_path: Path) -> None:
    logger = make_logger(tmp_path)
    await logger.async_log_success_event(kwargs=KWARGS, response_obj={"id": "r1"}, start_time=None, end_time=None)
    await logger.async_log_failure_event(kwargs=KWARGS, response_obj=None, start_time=None, end_time=None)
    stored = rows(tmp_path / "spool" / "o.db")  # read by another connection: committed
    assert [e["status"] for e in stored] == ["success", "failure"]
    assert stored[0]["usage"]["total_tokens"] == 3 and stored[0]["request_id"] == "r1"
    assert logger.stats.written == 2
    await logger.shutdown()


async def test_unconfigured_logger_skips_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = make_logger(tmp_path, supabase_litellm_usage_url=None)
    await logger.start()
    assert "SUPABASE_LITELLM_USAGE_URL not set" in capsys.readouterr().out
    await logger.async_log_success_event(kwargs=KWARGS, response_obj=None, start_time=None, end_time=None)
    assert logger.stats.skipped == 1 and logger.stats.written == 0
    assert not (tmp_path / "spool").exists()
    status = await logger.status()
    assert status["configured"] is False and status["missing"] == ["SUPABASE_LITELLM_USAGE_URL"]


async def test_a_mapping_bug_never_raises_into_litellm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(usage_logger_module, "build_usage_event", broken)
    logger = make_logger(tmp_path)
    await logger.async_log_success_event(kwargs=KWARGS, response_obj=None, start_time=None, end_time=None)
    assert logger.stats.written == 0


async def test_full_outbox_refuses_loudly_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = make_logger(tmp_path, usage_spool_max_rows=1)
    for _ in range(3):
        await logger.async_log_success_event(kwargs=KWARGS, response_obj=None, start_time=None, end_time=None)
    assert logger.stats.written == 1 and logger.stats.refused == 2
    assert capsys.readouterr().out.count("usage_event_refused") == 2
    await logger.shutdown()


async def test_write_failure_at_run_time_degrades_to_memory_and_keeps_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = make_logger(tmp_path)
    outbox = logger.outbox()

    async def failing_put(event_id: str, body: bytes) -> PutResult:
        raise OutboxUnavailableError(f"cannot write usage outbox at {outbox.path}: disk I/O error")

    monkeypatch.setattr(outbox, "put", failing_put)
    await logger.async_log_success_event(kwargs=KWARGS, response_obj=None, start_time=None, end_time=None)
    assert isinstance(logger.outbox(), MemoryOutbox) and (await logger.outbox().stats()).depth == 1
    status = await logger.status()
    assert status["degraded"] is True and "disk I/O error" in status["degraded_reason"]
    out = capsys.readouterr().out
    assert out.count("usage_outbox_degraded") == 1 and str(tmp_path) in out
    await logger.shutdown()


def test_status_counts_are_not_public_attributes(tmp_path: Path) -> None:
    logger = make_logger(tmp_path)
    assert not any(isinstance(v, int) and not isinstance(v, bool) for k, v in vars(logger).items() if k[0] != "_")
