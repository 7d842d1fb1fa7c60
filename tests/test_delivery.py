"""Delivery decisions (pure) and the sender against a mocked edge function (respx)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from pathlib import Path

import httpx
import pytest
import respx

from app.delivery import (
    DeliveryConfig,
    Outcome,
    Sender,
    auth_headers,
    backoff_delay,
    classify_status,
    parse_retry_after,
)
from app.outbox import SqliteOutbox
from app.stats import UsageStats

URL = "https://proj.supabase.co/functions/v1/litellm-usage"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SENT),
        (201, Outcome.SENT),
        (204, Outcome.SENT),
        (408, Outcome.RETRY),
        (425, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.DEAD),
        (401, Outcome.DEAD),
        (404, Outcome.DEAD),
        (422, Outcome.DEAD),
        (301, Outcome.DEAD),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after(None, 0) is None and parse_retry_after("soon", 0) is None
    assert parse_retry_after("999999", 0) == 3600.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(12, abs=1)


def test_backoff_is_full_jitter_capped_and_floored_by_retry_after() -> None:
    assert backoff_delay(0, 30, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, 30, rand=lambda: 1.0) == 4.0
    assert backoff_delay(20, 30, rand=lambda: 1.0) == 30.0
    assert backoff_delay(20, 30, rand=lambda: 0.0) == 0.0
    assert backoff_delay(0, 30, retry_after_s=9, rand=lambda: 0.5) == 9
    assert backoff_delay(500, 30) <= 30


def test_auth_headers_carry_key_twice_and_idempotency_key() -> None:
    headers = auth_headers("K", "ev-1")
    assert headers["Authorization"] == "Bearer K" and headers["apikey"] == "K"
    assert headers["Idempotency-Key"] == "ev-1"


def config(**overrides: object) -> DeliveryConfig:
    base: dict[str, object] = {
        "url": URL,
        "api_key": "K",
        "max_in_flight": 4,
        "retry_max_s": 0.05,
        "http_timeout_s": 2,
        "lease_s": 30,
    }
    base.update(overrides)
    return DeliveryConfig(**base)  # type: ignore[arg-type]


async def drain(outbox: SqliteOutbox, stats: UsageStats, cfg: DeliveryConfig, until: float = 5.0) -> None:
    sender = Sender(cfg, lambda: outbox, stats)
    sender.start()
    deadline = asyncio.get_running_loop().time() + until
    while asyncio.get_running_loop().time() < deadline and (await outbox.stats()).depth:
        await asyncio.sleep(0.02)
    await sender.shutdown(0.5)


async def filled(tmp_path: Path, n: int) -> SqliteOutbox:
    outbox = SqliteOutbox(tmp_path / "o.db", 1000)
    for i in range(n):
        await outbox.put(f"ev-{i}", json.dumps({"event_id": f"ev-{i}"}).encode())
    return outbox


@respx.mock
async def test_sender_posts_each_event_once_with_headers(tmp_path: Path) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200))
    outbox, stats = await filled(tmp_path, 10), UsageStats()
    await drain(outbox, stats, config())
    assert route.call_count == 10 and stats.sent == 10
    ids = sorted(call.request.headers["idempotency-key"] for call in route.calls)
    assert ids == sorted(f"ev-{i}" for i in range(10))
    assert all(json.loads(c.request.content)["event_id"] == c.request.headers["idempotency-key"] for c in route.calls)
    assert (await outbox.stats()).depth == 0


@respx.mock
async def test_retryable_answers_and_network_errors_are_retried_until_delivered(tmp_path: Path) -> None:
    answers = [httpx.Response(503), httpx.Response(429, headers={"retry-after": "0"}), httpx.ConnectError("down")]
    route = respx.post(URL).mock(side_effect=[*answers, httpx.Response(200)])
    outbox, stats = await filled(tmp_path, 1), UsageStats()
    await drain(outbox, stats, config(max_in_flight=1))
    assert route.call_count == 4 and stats.sent == 1 and stats.retried == 3
    assert (await outbox.stats()).depth == 0


@respx.mock
async def test_permanent_rejection_is_dead_lettered_once_not_retried(tmp_path: Path) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(400, text="bad payload"))
    outbox, stats = await filled(tmp_path, 1), UsageStats()
    await drain(outbox, stats, config())
    await asyncio.sleep(0.1)
    assert route.call_count == 1 and stats.dead_lettered == 1
    final = await outbox.stats()
    assert (final.depth, final.dead_letters) == (0, 1)


@respx.mock
async def test_shutdown_leaves_undelivered_rows_in_the_outbox(tmp_path: Path) -> None:
    respx.post(URL).mock(return_value=httpx.Response(503))
    outbox, stats = await filled(tmp_path, 3), UsageStats()
    sender = Sender(config(retry_max_s=10), lambda: outbox, stats)
    sender.start()
    await asyncio.sleep(0.2)
    await sender.shutdown(0.2)
    assert (await outbox.stats()).depth == 3
