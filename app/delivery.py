"""Delivery: drain the outbox to the Supabase edge function, at least once.

The shape is OpenTelemetry's BatchSpanProcessor: the request path only writes
to a bounded store; one background task per worker claims due rows, posts them
with bounded concurrency over one keep-alive `aiohttp.ClientSession`, and is shut
down explicitly with a flush deadline. The decisions (what an answer means,
how long to wait) are pure functions, so they are tested without a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import aiohttp

from app.logs import get_logger
from app.outbox import Outbox, OutboxRow

log = get_logger("SupabaseUsageLogger")

RETRYABLE_STATUS = frozenset({408, 425, 429})
BACKOFF_BASE_S = 0.5
RETRY_AFTER_MAX_S = 3600.0
BODY_EXCERPT_CHARS = 300
IDLE_POLL_S = 0.05  # how soon a row written by another process is noticed
BACKLOG_SUMMARY_EVERY_S = 30.0
MAINTAIN_EVERY_S = 10.0


class Outcome(Enum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


def classify_status(status: int) -> Outcome:
    """What an HTTP answer means for the row: only a 2xx deletes it."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status in RETRYABLE_STATUS or status >= 500:
        return Outcome.RETRY
    return Outcome.DEAD


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(when.timestamp() - now, 0.0), RETRY_AFTER_MAX_S)


def backoff_delay(
    attempts: int, cap_s: float, retry_after_s: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter, capped; a server's Retry-After is a floor."""
    ceiling = min(cap_s, BACKOFF_BASE_S * float(2 ** min(attempts, 30)))
    delay = rand() * ceiling
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def auth_headers(api_key: str, event_id: str) -> dict[str, str]:
    """Supabase accepts the key in either header; we send both, plus the idempotency key."""
    return {
        "Authorization": f"Bearer {api_key}",
        "apikey": api_key,
        "Content-Type": "application/json",
        "Idempotency-Key": event_id,
    }


def body_excerpt(text: str) -> str:
    return text[:BODY_EXCERPT_CHARS].replace("\n", " ")


class LogGate:
    """At most one line per `interval_s`; says how many were held back since the last one.

    An outage fails every pending event: one line per failed attempt would flood
    the logs with a large backlog, and hide everything else.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._next = 0.0
        self._held_back = 0

    def take(self, now: float) -> int | None:
        """The count held back since the last line when a line may be written now, else None."""
        if now < self._next:
            self._held_back += 1
            return None
        self._next = now + self._interval_s
        held, self._held_back = self._held_back, 0
        return held


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    url: str
    api_key: str
    max_in_flight: int
    retry_max_s: float
    http_timeout_s: float
    lease_s: float


@dataclass(frozen=True, slots=True)
class PostResult:
    """What one POST came to: an HTTP answer, or `status=None` for a transport failure."""

    status: int | None
    retry_after_s: float | None
    detail: str


def build_session(config: DeliveryConfig) -> aiohttp.ClientSession:
    """One keep-alive session per sender, bounded in every dimension.

    aiohttp rather than httpx: it is already installed with `litellm[proxy]` and
    costs an eighth of httpx's CPU per POST (`bench/client_cost.py`), which is what
    decides the drain rate and what delivery takes from the proxy's machine.
    """
    timeout = aiohttp.ClientTimeout(total=config.http_timeout_s, connect=min(5.0, config.http_timeout_s))
    connector = aiohttp.TCPConnector(limit=config.max_in_flight, keepalive_timeout=30)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False)


async def post_event(session: aiohttp.ClientSession, url: str, api_key: str, event_id: str, body: bytes) -> PostResult:
    """POST one stored event. Never raises for network trouble: that is a `status=None` result."""
    try:
        async with session.post(
            url, data=body, headers=auth_headers(api_key, event_id), allow_redirects=False
        ) as response:
            status = response.status
            if 200 <= status < 300:
                await response.read()  # return the connection to the pool
                return PostResult(status, None, "")
            text = await response.text(errors="replace")
            return PostResult(
                status, parse_retry_after(response.headers.get("retry-after"), time.time()), body_excerpt(text)
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return PostResult(None, None, f"{type(exc).__name__}: {exc}".strip())


class Sender:
    """The background task that empties the outbox. Start once per worker, shut down once."""

    def __init__(
        self,
        config: DeliveryConfig,
        outbox_getter: Callable[[], Outbox],
    ) -> None:
        self._config = config
        self._outbox = outbox_getter
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], OutboxRow] = {}
        self._stopping = False
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._last_summary = 0.0
        self._last_maintain = time.monotonic()
        # An outage is the endpoint's, not one row's: after a retryable failure nobody sends
        # until a backoff shared by all rows has passed, so a big backlog does not hammer it.
        self._paused_until = 0.0
        self._consecutive_failures = 0
        self._failure_log = LogGate()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._session = build_session(self._config)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-sender")

    def notify(self) -> None:
        """A new row is waiting: wake the loop instead of waiting for the next poll."""
        self._wake.set()

    async def shutdown(self, flush_s: float) -> None:
        """Keep draining for up to `flush_s`, then stop; what is left stays in the outbox."""
        if self._task is None:
            return
        deadline = time.monotonic() + flush_s
        while time.monotonic() < deadline and not self._task.done():
            stats = await self._outbox().stats()
            nothing_due = (stats.next_due_at or 0) > time.time() + 0.05
            if not self._in_flight and (stats.depth == 0 or nothing_due or self._paused_until > deadline):
                break
            await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        leftover = list(self._in_flight.values())
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if leftover:
            with contextlib.suppress(Exception):
                await self._outbox().release(leftover)
        if self._session is not None:
            await self._session.close()
            self._session = None
        stats = await self._outbox().stats()
        log.info(
            "usage_sender_stopped",
            left_in_outbox=stats.depth,
            durable=self._outbox().durable,
            outbox_path=self._outbox().path,
        )

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._claim_and_send()
                await self._periodic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad tick must not stop delivery for the process's life
                log.error("usage_sender_error", error=f"{type(exc).__name__}: {exc}")
                claimed = 0
            if claimed == 0:
                await self._idle()

    async def _claim_and_send(self) -> int:
        capacity = self._config.max_in_flight - len(self._in_flight)
        if capacity <= 0 or time.monotonic() < self._paused_until:
            return 0
        outbox = self._outbox()
        # Claiming writes; most polls find nothing due, so ask with a read first.
        if not await outbox.has_due():
            return 0
        rows = await outbox.claim(capacity, self._owner, self._config.lease_s)
        for row in rows:
            task = asyncio.get_running_loop().create_task(self._deliver(row))
            self._in_flight[task] = row
            task.add_done_callback(self._finished)
        return len(rows)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()

    async def _idle(self) -> None:
        self._wake.clear()
        timeout = max(IDLE_POLL_S, self._paused_until - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _periodic(self) -> None:
        now = time.monotonic()
        if now - self._last_maintain >= MAINTAIN_EVERY_S:
            self._last_maintain = now
            await self._outbox().maintain()
        if now - self._last_summary >= BACKLOG_SUMMARY_EVERY_S:
            stats = await self._outbox().stats()
            if stats.depth > 0:
                self._last_summary = now
                log.warning(
                    "usage_events_backlog",
                    pending=stats.depth,
                    oldest_age_s=round(time.time() - stats.oldest_created_at, 1) if stats.oldest_created_at else None,
                    sent=stats.sent,
                    retried=stats.retried,
                    dead_lettered=stats.dead_lettered,
                )

    async def _deliver(self, row: OutboxRow) -> None:
        outbox = self._outbox()
        assert self._session is not None
        result = await post_event(self._session, self._config.url, self._config.api_key, row.event_id, row.body)
        status, retry_after, detail = result.status, result.retry_after_s, result.detail
        outcome = Outcome.RETRY if status is None else classify_status(status)
        fields = {"event_id": row.event_id, "http_status": status, "attempts": row.attempts + 1}

        if outcome is Outcome.SENT:
            self._consecutive_failures = 0
            await outbox.ack(row)
            log.info("usage_event_sent", **fields)
        elif outcome is Outcome.RETRY:
            delay = backoff_delay(row.attempts, self._config.retry_max_s, retry_after)
            await outbox.retry(row, delay)
            now = time.monotonic()
            pause = backoff_delay(self._consecutive_failures, self._config.retry_max_s, retry_after)
            self._consecutive_failures += 1
            self._paused_until = max(self._paused_until, now + pause)
            held_back = self._failure_log.take(now)
            if held_back is not None:
                log.warning(
                    "usage_event_failed",
                    **fields,
                    detail=detail,
                    retry_in_s=round(delay, 2),
                    similar_failures_not_logged=held_back,
                )
        else:
            await outbox.dead_letter(row, status, detail)
            log.error("usage_event_dead_lettered", **fields, detail=detail)
