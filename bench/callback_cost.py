"""`make bench`, part 2: the logger's own costs, each beside a baseline from the same run.

1. The callback (entry to return) over 10,000 events with the outbox on disk,
   beside its two parts alone: the payload mapping and the bare INSERT.
2. The drain rate of a 10,000-event backlog to the local edge-function
   stand-in, beside a bare aiohttp POST loop to the same stand-in (the ceiling
   the stand-in itself sets).
3. RSS growth with a 100,000-event backlog while the edge function is down and
   every event is being retried.

    python bench/callback_cost.py [--events 10000] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.delivery import Sender, build_session, post_event  # noqa: E402
from app.delivery_process import delivery_config  # noqa: E402
from app.logs import configure_logging  # noqa: E402
from app.outbox import SqliteOutbox  # noqa: E402
from app.payload import build_usage_event, encode_event, new_event_id  # noqa: E402
from app.settings import UsageSettings  # noqa: E402
from app.usage_logger import _PROXY_SupabaseUsageLogger  # noqa: E402
from tests.harness import free_port, start_edge  # noqa: E402

KWARGS: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "litellm_call_id": "0b7c5c84-6f0e-4d55-9a11-3f1f2c9f4c11",
    "standard_logging_object": {
        "id": "chatcmpl-8c6b2f3e",
        "litellm_call_id": "0b7c5c84-6f0e-4d55-9a11-3f1f2c9f4c11",
        "trace_id": "f2d4",
        "call_type": "acompletion",
        "stream": False,
        "response_cost": 5.85e-06,
        "custom_llm_provider": "openai",
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "startTime": 1_764_000_000.0,
        "endTime": 1_764_000_000.4,
        "model": "gpt-4o-mini",
        "model_id": "cc2c8039",
        "model_group": "gpt-4o-mini",
        "cache_hit": False,
        "end_user": None,
        "request_tags": ["User-Agent: OpenAI"],
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": "acme-prod",
            "user_api_key_team_id": "team-9",
            "user_api_key_user_id": "user-123",
            "spend_logs_metadata": {"invoice": "INV-1"},
        },
    },
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def settings_for(url: str, spool: Path) -> UsageSettings:
    return UsageSettings(
        supabase_litellm_usage_url=url,
        supabase_anon_key="bench-anon-key-0000",  # type: ignore[arg-type]
        usage_spool_path=spool,
        usage_spool_max_rows=10_000_000,
        usage_retry_max_s=1.0,
    )


async def callback_cost(events: int, workdir: Path, edge_url: str) -> None:
    logger = _PROXY_SupabaseUsageLogger(settings_for(edge_url, workdir / "callback.db"))
    logger.outbox()  # opened at startup in the proxy, not on the first call
    mapping, insert, total = [], [], []
    bare = SqliteOutbox(workdir / "bare.db", 10_000_000)
    body = encode_event(build_usage_event(KWARGS, None, None, None, "success", "x"))
    for _ in range(events):
        t0 = time.perf_counter_ns()
        build_usage_event(KWARGS, {"id": "chatcmpl-1"}, None, None, "success", new_event_id())
        t1 = time.perf_counter_ns()
        await bare.put(new_event_id(), body)
        t2 = time.perf_counter_ns()
        await logger.async_log_success_event(
            kwargs=KWARGS, response_obj={"id": "chatcmpl-1"}, start_time=None, end_time=None
        )
        t3 = time.perf_counter_ns()
        mapping.append(t1 - t0)
        insert.append(t2 - t1)
        total.append(t3 - t2)
    assert logger.stats.written == events
    print(f"1. callback cost over {events:,} events, outbox on disk ({workdir}):")
    for name, samples in (("payload mapping alone", mapping), ("bare INSERT alone", insert), ("callback", total)):
        p50, p99 = percentiles(samples)
        print(f"   {name:22} p50 {p50:7.1f} us   p99 {p99:7.1f} us   max {max(samples) / 1000:8.1f} us")
    p50_total, _ = percentiles(total)
    p50_parts = percentiles(mapping)[0] + percentiles(insert)[0]
    print(f"   callback p50 / (mapping + INSERT) p50 = {p50_total / p50_parts:.2f}")
    await logger.shutdown()
    bare.close()


async def drain_rate(events: int, workdir: Path, edge_url: str) -> None:
    settings = settings_for(edge_url, workdir / "drain.db")
    config = delivery_config(settings)
    body = encode_event(build_usage_event(KWARGS, None, None, None, "success", "x"))
    # Baseline: bare POSTs at the same concurrency to the same stand-in.
    async with build_session(config) as session:
        semaphore = asyncio.Semaphore(config.max_in_flight)

        async def one(i: int) -> None:
            async with semaphore:
                result = await post_event(session, config.url, config.api_key, f"base-{i}", body)
                assert result.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(events)))
        baseline = events / (time.perf_counter() - started)
    outbox = SqliteOutbox(settings.usage_spool_path, settings.usage_spool_max_rows)
    for i in range(events):
        await outbox.put(f"drain-{i}", json.dumps({"event_id": f"drain-{i}", "n": i}).encode())
    configure_logging("json", "error")  # per-event lines would measure the terminal, not delivery
    sender = Sender(config, lambda: outbox)
    started = time.perf_counter()
    sender.start()
    while (await outbox.stats()).depth:
        await asyncio.sleep(0.01)
    rate = events / (time.perf_counter() - started)
    await sender.shutdown(1)
    outbox.close()
    print(f"2. drain of a {events:,}-event backlog to the local stand-in (max in flight {config.max_in_flight}):")
    print(f"   bare POST loop    {baseline:8.0f} events/s")
    print(f"   sender            {rate:8.0f} events/s   ({rate / baseline:.2f} of the bare loop)")


async def backlog_rss(backlog: int, workdir: Path) -> None:
    down_url = f"http://127.0.0.1:{free_port()}/functions/v1/litellm-usage"
    settings = settings_for(down_url, workdir / "backlog.db")
    before = rss_mb()
    outbox = SqliteOutbox(settings.usage_spool_path, settings.usage_spool_max_rows)
    body = encode_event(build_usage_event(KWARGS, None, None, None, "success", "x"))
    for _ in range(backlog):
        await outbox.put(new_event_id(), body)
    filled = rss_mb()
    sender = Sender(delivery_config(settings), lambda: outbox)
    sender.start()
    await asyncio.sleep(5)  # the edge function is down: every claimed event fails and is retried
    retried = (await outbox.stats()).retried
    during = rss_mb()
    await sender.shutdown(0.5)
    depth = (await outbox.stats()).depth
    outbox.close()
    size = sum(p.stat().st_size for p in workdir.glob("backlog.db*")) / 1e6
    print(f"3. RSS with a {backlog:,}-event backlog ({size:.0f} MB on disk), edge function down:")
    print(f"   before {before:.1f} MB, after filling {filled:.1f} MB, after 5 s of retrying {during:.1f} MB")
    print(f"   growth {during - before:+.1f} MB; {retried:,} failed attempts; {depth:,} events still pending")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging("json", "error")
    workdir = Path(tempfile.mkdtemp(prefix="bench-callback-"))
    edge = start_edge()
    try:
        await callback_cost(args.events, workdir, edge.url)
        await drain_rate(args.events, workdir, edge.url)
        await backlog_rss(args.backlog, workdir)
    finally:
        edge.process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
