"""End to end: nothing lost when the edge function misbehaves or the proxy stops.

A real proxy process, a real edge-function stand-in process, real loopback
HTTP. Retries are capped at 1 s (`USAGE_RETRY_MAX_S=1`) so the tests wait little.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness import Edge, Process, Proxy, free_port, proxy_config, start_edge, start_proxy

pytestmark = pytest.mark.e2e


def chat(proxy: Proxy, times: int) -> list[str]:
    client = proxy.client()
    return [
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]).id
        for i in range(times)
    ]


def delivered_request_ids(edge: Edge) -> list[str]:
    return [e["body"]["request_id"] for e in edge.events()]


@pytest.fixture
def proxy(upstream: Process, edge: Edge, tmp_path: Path) -> Iterator[Proxy]:
    started = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path)
    yield started
    started.stop()


def test_edge_function_down_at_start_then_up(upstream: Process, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/functions/v1/litellm-usage"
    proxy = start_proxy(proxy_config(upstream.url), url, workdir=tmp_path)
    late_edge: Edge | None = None
    try:
        ids = chat(proxy, 5)
        assert proxy.status()["outbox_depth"] == 5
        late_edge = start_edge(port)
        events = late_edge.wait_for(5, timeout=30, settle=1.5)
        assert sorted(delivered_request_ids(late_edge)) == sorted(ids)
        assert proxy.status()["counts"]["retried"] >= 1  # one shared backoff, not one per event
    finally:
        proxy.stop()
        if late_edge:
            late_edge.process.stop()
    assert len(events) == 5


def test_503_for_the_first_posts_then_everything_arrives_once(proxy: Proxy, edge: Edge) -> None:
    edge.control(fail_first=8, fail_status=503)
    ids = chat(proxy, 5)
    events = edge.wait_for(5, timeout=30, settle=1.5)
    assert sorted(e["body"]["request_id"] for e in events) == sorted(ids)
    event_ids = [e["body"]["event_id"] for e in events]
    assert len(event_ids) == len(set(event_ids)) == 5
    attempts = edge.state()["attempts"]
    assert sum(a["status"] == 503 for a in attempts) == 8
    assert "usage_event_failed" in proxy.process.output()


def test_429_with_retry_after_is_honoured(proxy: Proxy, edge: Edge) -> None:
    edge.control(fail_first=1, fail_status=429, retry_after=1)
    chat(proxy, 1)
    assert len(edge.wait_for(1, timeout=15)) == 1
    first, second = edge.state()["attempts"][:2]
    assert first["status"] == 429 and second["status"] == 200
    assert second["at"] - first["at"] >= 0.9


def test_permanent_400_is_dead_lettered_and_posted_once(proxy: Proxy, edge: Edge) -> None:
    edge.control(status=400)
    chat(proxy, 1)
    edge.wait_for(99, timeout=3)  # give a retry loop every chance to show itself
    attempts = edge.state()["attempts"]
    assert len(attempts) == 1 and attempts[0]["status"] == 400
    status = proxy.status()
    assert status["counts"]["dead_lettered"] == 1 and status["dead_letters"] == 1 and status["outbox_depth"] == 0
    assert proxy.process.output().count('"usage_event_dead_lettered"') == 1


def test_a_stuck_edge_function_does_not_hold_up_the_proxy(upstream: Process, edge: Edge, tmp_path: Path) -> None:
    # A long client timeout, so no post is retried while it is held: the test is about the proxy.
    proxy = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path, USAGE_HTTP_TIMEOUT_S="120")
    try:
        edge.control(hold=True)  # every post now waits, unanswered, until released
        ids = chat(proxy, 10)  # these return while the edge function has answered nothing
        assert len(ids) == 10 and edge.events() == []
        edge.control(hold=False)
        assert sorted(e["body"]["request_id"] for e in edge.wait_for(10, timeout=30)) == sorted(ids)
    finally:
        proxy.stop()


def test_sigterm_with_a_backlog_then_restart_delivers_everything_once(
    upstream: Process, edge: Edge, tmp_path: Path
) -> None:
    edge.control(status=503)
    first = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path, USAGE_SHUTDOWN_FLUSH_S="1")
    ids = chat(first, 6)
    assert first.stop() == 0
    assert '"left_in_outbox": 6' in first.process.output()
    assert edge.events() == []
    edge.control(status=200)
    second = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path)
    try:
        events = edge.wait_for(6, timeout=30, settle=1.5)
    finally:
        second.stop()
    assert sorted(e["body"]["request_id"] for e in events) == sorted(ids)
    assert len({e["body"]["event_id"] for e in events}) == 6


def test_unwritable_spool_path_degrades_but_keeps_serving_and_metering(
    upstream: Process, edge: Edge, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proxy = start_proxy(
        proxy_config(upstream.url), edge.url, workdir=tmp_path, USAGE_SPOOL_PATH=str(blocker / "spool.db")
    )
    try:
        ids = chat(proxy, 2)
        assert sorted(e["body"]["request_id"] for e in edge.wait_for(2)) == sorted(ids)
        status = proxy.status()
        assert status["degraded"] is True and str(blocker) in status["degraded_reason"]
        output = proxy.process.output()
        assert output.count('"usage_outbox_degraded"') == 1 and str(blocker) in output
    finally:
        proxy.stop()


def test_sigkill_mid_burst_loses_nothing_that_reached_the_outbox(upstream: Process, edge: Edge, tmp_path: Path) -> None:
    """SIGKILL during a burst: every event written to the outbox is delivered after a restart.

    Calls whose response reached the client but whose callback had not yet run
    when the process died are the only possible loss (LiteLLM runs callbacks
    after answering); the test measures that window and prints it.
    """
    edge.control(status=503)  # nothing is accepted before the kill: the outbox holds everything
    # A short lease, so rows claimed by the killed process are due again soon after the restart.
    first = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path, USAGE_LEASE_S="3")
    completed: list[str] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        try:
            response = first.client().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"burst {i}"}]
            )
        except Exception:
            return
        with lock:
            completed.append(response.id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(300):
            pool.submit(call, i)
        while True:  # kill in the middle of the burst, with calls still in flight
            with lock:
                if len(completed) >= 100:
                    break
            time.sleep(0.005)
        first.process.signal(signal.SIGKILL)
    first.process.popen.wait(10)
    spool = tmp_path / "spool" / "usage.db"
    with sqlite3.connect(spool) as conn:
        in_outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    edge.control(status=200)

    second = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path, USAGE_LEASE_S="3")
    try:
        events = edge.wait_for(in_outbox, timeout=60, settle=2.0)
    finally:
        second.stop()
    delivered = {e["body"]["request_id"] for e in events}
    assert len(events) == len(delivered) == in_outbox, "every row in the outbox is delivered exactly once"
    lost = set(completed) - delivered
    print(f"\nSIGKILL window: {len(completed)} calls answered, {in_outbox} events in the outbox, {len(lost)} lost")
    assert in_outbox > 0 and set(completed) - lost == set(completed) & delivered
