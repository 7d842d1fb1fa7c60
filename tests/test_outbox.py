"""The outbox contract, for the SQLite file and the in-memory fallback alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.outbox import MemoryOutbox, Outbox, OutboxUnavailableError, PutResult, SqliteOutbox, open_outbox

Factory = Callable[[int], Outbox]


@pytest.fixture(params=["sqlite", "memory"])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    def factory(max_rows: int = 1000) -> Outbox:
        if request.param == "sqlite":
            return SqliteOutbox(tmp_path / "spool" / "o.db", max_rows)
        return MemoryOutbox(max_rows)

    return factory


async def test_put_claim_ack_in_order(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    for i in range(5):
        assert await outbox.put(f"e{i}", f'{{"n":{i}}}'.encode()) is PutResult.WRITTEN
    rows = await outbox.claim(3, "w1", 60)
    assert [r.event_id for r in rows] == ["e0", "e1", "e2"]
    assert rows[0].body == b'{"n":0}'
    for row in rows:
        await outbox.ack(row)
    assert (await outbox.stats()).depth == 2
    outbox.close()


async def test_same_event_id_is_stored_once(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    assert await outbox.put("e", b"{}") is PutResult.WRITTEN
    assert await outbox.put("e", b"{}") is PutResult.DUPLICATE
    assert (await outbox.stats()).depth == 1


async def test_full_outbox_refuses_new_events(make_outbox: Factory) -> None:
    outbox = make_outbox(2)
    assert await outbox.put("a", b"{}") is PutResult.WRITTEN
    assert await outbox.put("b", b"{}") is PutResult.WRITTEN
    assert await outbox.put("c", b"{}") is PutResult.FULL
    await outbox.ack((await outbox.claim(1, "w", 60))[0])
    assert await outbox.put("c", b"{}") is PutResult.WRITTEN


async def test_claimed_rows_are_not_claimed_again_until_the_lease_ends(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    await outbox.put("a", b"{}")
    assert len(await outbox.claim(10, "w1", 0.2)) == 1
    assert await outbox.claim(10, "w2", 0.2) == []
    await asyncio.sleep(0.3)
    again = await outbox.claim(10, "w2", 60)
    assert [r.event_id for r in again] == ["a"]


async def test_retry_delays_and_counts_attempts(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    await outbox.put("a", b"{}")
    row = (await outbox.claim(1, "w", 60))[0]
    await outbox.retry(row, 0.2)
    assert await outbox.claim(1, "w", 60) == []
    await asyncio.sleep(0.25)
    retried = await outbox.claim(1, "w", 60)
    assert retried[0].attempts == 1


async def test_dead_letter_removes_from_outbox(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    await outbox.put("a", b"{}")
    row = (await outbox.claim(1, "w", 60))[0]
    await outbox.dead_letter(row, 400, "bad request")
    stats = await outbox.stats()
    assert (stats.depth, stats.dead_letters) == (0, 1)


async def test_release_makes_rows_due_at_once(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    await outbox.put("a", b"{}")
    rows = await outbox.claim(1, "w", 600)
    await outbox.release(rows)
    assert [r.event_id for r in await outbox.claim(1, "w", 60)] == ["a"]


async def test_stats_report_oldest_pending(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    assert (await outbox.stats()).oldest_created_at is None
    before = time.time()
    await outbox.put("a", b"{}")
    oldest = (await outbox.stats()).oldest_created_at
    assert oldest is not None and oldest >= before - 1


async def test_two_processes_worth_of_outboxes_share_one_file_without_double_claims(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = SqliteOutbox(path, 10_000), SqliteOutbox(path, 10_000)
    for i in range(200):
        await (first if i % 2 else second).put(f"e{i}", b"{}")
    claimed: list[str] = []
    while True:
        a = await first.claim(7, "w1", 60)
        b = await second.claim(5, "w2", 60)
        if not a and not b:
            break
        claimed += [r.event_id for r in a + b]
    assert sorted(claimed) == sorted(f"e{i}" for i in range(200))
    assert len(claimed) == len(set(claimed))


async def test_rows_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    outbox = SqliteOutbox(path, 100)
    await outbox.put("a", b'{"x":1}')
    outbox.close()
    reopened = SqliteOutbox(path, 100)
    assert [r.body for r in await reopened.claim(5, "w", 60)] == [b'{"x":1}']


def test_unwritable_location_falls_back_to_memory(tmp_path: Path) -> None:
    # A regular file where the directory should be: fails for root too, unlike chmod.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    outbox, reason = open_outbox(blocker / "spool" / "o.db", 10)
    assert isinstance(outbox, MemoryOutbox) and reason is not None and str(blocker) in reason


def test_corrupt_file_falls_back_to_memory_with_the_path_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    outbox, reason = open_outbox(path, 10)
    assert isinstance(outbox, MemoryOutbox)
    assert reason is not None and str(path) in reason and "not a database" in reason
    with pytest.raises(OutboxUnavailableError):
        SqliteOutbox(path, 10)


def test_path_that_is_a_directory_falls_back(tmp_path: Path) -> None:
    outbox, reason = open_outbox(tmp_path, 10)
    assert isinstance(outbox, MemoryOutbox) and reason is not None


async def test_delivery_outcomes_are_counted_in_the_outbox(make_outbox: Factory) -> None:
    outbox = make_outbox(1000)
    for event_id in ("a", "b", "c"):
        await outbox.put(event_id, b"{}")
    a, b, c = await outbox.claim(3, "w", 60)
    await outbox.ack(a)
    await outbox.retry(b, 0)
    await outbox.dead_letter(c, 400, "no")
    stats = await outbox.stats()
    assert (stats.sent, stats.retried, stats.dead_lettered, stats.depth) == (1, 1, 1, 1)
    assert await outbox.has_due()
