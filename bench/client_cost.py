"""The evidence for the delivery client: CPU per POST of httpx and aiohttp, same stand-in, same run.

python bench/client_cost.py [--posts 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import start_edge  # noqa: E402

BODY = b'{"event_id": "x", "padding": "' + b"x" * 400 + b'"}'
HEADERS = {"Authorization": "Bearer k", "apikey": "k", "Idempotency-Key": "x", "Content-Type": "application/json"}
CONCURRENCY = 8


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_post_us(url: str, posts: int, send: Callable[[], Awaitable[None]]) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with semaphore:
            await send()

    started = cpu_seconds()
    await asyncio.gather(*(one() for _ in range(posts)))
    return (cpu_seconds() - started) / posts * 1e6


async def with_httpx(url: str, posts: int) -> float:
    async with httpx.AsyncClient() as client:

        async def send() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()

        return await per_post_us(url, posts, send)


async def with_aiohttp(url: str, posts: int) -> float:
    async with aiohttp.ClientSession() as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                response.raise_for_status()

        return await per_post_us(url, posts, send)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    edge = start_edge()
    try:
        results: dict[str, list[float]] = {"httpx": [], "aiohttp": []}
        for _ in range(args.rounds):  # alternating, so drift hits both
            results["httpx"].append(asyncio.run(with_httpx(edge.url, args.posts)))
            results["aiohttp"].append(asyncio.run(with_aiohttp(edge.url, args.posts)))
    finally:
        edge.process.stop()
    print(f"CPU per POST of this process, {args.posts:,} POSTs x {args.rounds} rounds, {CONCURRENCY} in flight:")
    for name, values in results.items():
        print(f"   {name:8} " + "  ".join(f"{v:6.0f} us" for v in values))
    ratio = min(results["aiohttp"]) / min(results["httpx"])
    print(f"   aiohttp / httpx (best rounds) = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
