"""Delivery decisions (pure), and the sender against the edge-function stand-in on loopback."""

from __future__ import annotations

import asyncio
import email.utils
import json
from pathlib import Path

import pytest

from app.delivery import (
    DeliveryConfig,
    LogGate,
    Outcome,
    Sender,
    auth_headers,
    backoff_delay,
    build_session,
    classify_status,
    parse_retry_after,
    post_event,
)
from app.outbox import SqliteOutbox
from tests.harness import Edge, free_port


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


def config(url: str, **overrides: object) -> DeliveryConfig:
    base: dict[str, object] = {
        "url": url,
        "api_key": "K",
        "max_in_flight": 4,
        "retry_max_s": 0.05,
        "http_timeout_s": 2,
        "lease_s": 30,
    }
    base.update(overrides)
    return DeliveryConfig(**base)  # type: ignore[arg-type]


async def drain(outbox: SqliteOutbox, cfg: DeliveryConfig, until: float = 5.0) -> None:
    sender = Sender(cfg, lambda: outbox)
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


# The sender against the edge-function stand-in: a real HTTP server on 127.0.0.1.


async def test_sender_posts_each_event_once_with_headers(tmp_path: Path, edge: Edge) -> None:
    outbox = await filled(tmp_path, 10)
    await drain(outbox, config(edge.url))
    stats = await outbox.stats()
    assert stats.sent == 10 and stats.depth == 0
    events = edge.events()
    assert sorted(e["body"]["event_id"] for e in events) == sorted(f"ev-{i}" for i in range(10))
    for event in events:
        headers = event["headers"]
        assert headers["authorization"] == "Bearer K" and headers["apikey"] == "K"
        assert headers["idempotency-key"] == event["body"]["event_id"]
        assert headers["content-type"] == "application/json"


async def test_retryable_answers_are_retried_until_delivered(tmp_path: Path, edge: Edge) -> None:
    edge.control(fail_first=3, fail_status=503)
    outbox = await filled(tmp_path, 1)
    await drain(outbox, config(edge.url, max_in_flight=1))
    stats = await outbox.stats()
    assert [a["status"] for a in edge.state()["attempts"]] == [503, 503, 503, 200]
    assert (stats.sent, stats.retried, stats.depth) == (1, 3, 0)


async def test_connection_errors_are_retried_and_nothing_is_dropped(tmp_path: Path) -> None:
    outbox = await filled(tmp_path, 2)
    closed = f"http://127.0.0.1:{free_port()}/functions/v1/litellm-usage"
    await drain(outbox, config(closed), until=0.5)
    stats = await outbox.stats()
    assert stats.retried >= 2 and stats.sent == 0 and stats.depth == 2


async def test_permanent_rejection_is_dead_lettered_once_not_retried(tmp_path: Path, edge: Edge) -> None:
    edge.control(status=400)
    outbox = await filled(tmp_path, 1)
    await drain(outbox, config(edge.url))
    await asyncio.sleep(0.2)
    final = await outbox.stats()
    assert len(edge.state()["attempts"]) == 1 and final.dead_lettered == 1
    assert (final.depth, final.dead_letters) == (0, 1)


async def test_shutdown_leaves_undelivered_rows_in_the_outbox(tmp_path: Path, edge: Edge) -> None:
    edge.control(status=503)
    outbox = await filled(tmp_path, 3)
    sender = Sender(config(edge.url, retry_max_s=10), lambda: outbox)
    sender.start()
    await asyncio.sleep(0.3)
    await sender.shutdown(0.2)
    assert (await outbox.stats()).depth == 3


async def test_post_event_reports_status_retry_after_and_excerpt(edge: Edge) -> None:
    edge.control(status=429, retry_after=7)
    async with build_session(config(edge.url)) as session:
        result = await post_event(session, edge.url, "K", "ev-x", b'{"event_id": "ev-x"}')
    assert result.status == 429 and result.retry_after_s == 7 and "429" in result.detail


def test_log_gate_lets_one_line_a_second_through_and_counts_the_rest() -> None:
    gate = LogGate(interval_s=1.0)
    assert gate.take(100.0) == 0
    assert gate.take(100.1) is None and gate.take(100.5) is None
    assert gate.take(101.0) == 2
    assert gate.take(101.2) is None


async def test_an_outage_pauses_all_sending_instead_of_hammering(tmp_path: Path) -> None:
    outbox = await filled(tmp_path, 200)
    closed = f"http://127.0.0.1:{free_port()}/functions/v1/litellm-usage"
    sender = Sender(config(closed, retry_max_s=1.0, max_in_flight=8), lambda: outbox)
    sender.start()
    await asyncio.sleep(2.0)
    await sender.shutdown(0)
    stats = await outbox.stats()
    # Without the shared pause every due row would be tried at once, again and again (hundreds);
    # with it, a handful of attempts per backoff period.
    assert stats.depth == 200 and 0 < stats.retried < 100
