"""Delivery in a process of its own, so the proxy's workers only ever write the outbox.

Why: each POST costs CPU (about 0.1 ms with aiohttp, 0.75 ms with httpx;
`bench/client_cost.py`), next to the 7 to 9 ms LiteLLM spends on a whole
request. In a serving worker that time is taken from requests; in a separate,
lower-priority process it runs beside them.
`python -m app` starts this process before uvicorn and stops it after; it is
the only sender of the outbox file, which it proves by holding an
exclusive lock on `<outbox>.sender.lock` (leases still keep any second sender
from sending a row twice).

If no process holds the lock (someone ran `uvicorn app.server:app` directly,
or the process died and is being restarted), a worker takes the lock and sends
inline instead, so events are never left undelivered for want of a sender.

The parent controls shutdown through the child's stdin: a `stop <seconds>`
line, or end-of-file if the parent died. The child ignores SIGTERM and SIGINT
so that a signal to the whole process group does not stop delivery before the
workers have written their last events.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from app.bootstrap import load_and_configure
from app.delivery import DeliveryConfig, Sender
from app.logs import get_logger
from app.outbox import OutboxUnavailableError, SqliteOutbox
from app.settings import SettingsError, UsageSettings

log = get_logger("SupabaseUsageLogger")

LOCK_WAIT_S = 15.0
RESTART_BACKOFF_S = 1.0


def lock_path(spool_path: Path) -> Path:
    return spool_path.with_name(spool_path.name + ".sender.lock")


class SenderLock:
    """An exclusive `flock` on a file beside the outbox: whoever holds it is the sender."""

    def __init__(self, spool_path: Path) -> None:
        self.path = lock_path(spool_path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_by_someone(self) -> bool:
        """True when another process (or another lock object) holds the lock right now."""
        if self._fd is not None:
            return True
        if self.try_acquire():
            self.release()
            return False
        return True


def delivery_config(settings: UsageSettings) -> DeliveryConfig:
    url, key = settings.supabase_litellm_usage_url, settings.api_key()
    if url is None or key is None:
        raise ValueError(f"{' and '.join(settings.missing_for_delivery())} not set")
    return DeliveryConfig(
        url=url,
        api_key=key,
        max_in_flight=settings.usage_max_in_flight,
        retry_max_s=settings.usage_retry_max_s,
        http_timeout_s=settings.usage_http_timeout_s,
        lease_s=settings.usage_lease_s,
    )


# -- the child ---------------------------------------------------------------------


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Future[float | None]) -> None:
    """Thread: the first `stop <s>` line (or EOF) resolves `stop` with the flush budget."""
    budget: float | None = None
    for line in sys.stdin:
        parts = line.split()
        if parts[:1] == ["stop"]:
            with contextlib.suppress(IndexError, ValueError):
                budget = float(parts[1])
            break

    def resolve() -> None:
        if not stop.done():
            stop.set_result(budget)

    loop.call_soon_threadsafe(resolve)


async def _deliver(settings: UsageSettings) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[float | None] = loop.create_future()
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True, name="stdin-watch").start()
    lock = SenderLock(settings.usage_spool_path)
    if not lock.try_acquire():
        # A worker took over while this process was down; it keeps sending until it stops.
        log.info("usage_delivery_process_waiting", lock=str(lock.path))
        while not lock.try_acquire():
            if stop.done():
                return 0
            await asyncio.sleep(0.5)
    try:
        outbox = SqliteOutbox(settings.usage_spool_path, settings.usage_spool_max_rows)
    except OutboxUnavailableError as exc:
        # The workers cannot use the file either: they fall back to memory and send inline.
        log.error("usage_delivery_process_no_outbox", cause=str(exc))
        lock.release()
        return 0
    sender = Sender(delivery_config(settings), lambda: outbox)
    sender.start()
    stats = await outbox.stats()
    log.info("usage_delivery_process_started", pid=os.getpid(), outbox_path=outbox.path, pending=stats.depth)
    budget = await stop
    await sender.shutdown(settings.usage_shutdown_flush_s if budget is None else budget)
    outbox.close()
    lock.release()
    return 0


def run_delivery_process() -> int:
    """`python -m app deliver`: what the parent starts. Not meant to be run by hand."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, settings = load_and_configure()
    except SettingsError:
        return 2
    if settings.usage_delivery_nice:
        os.nice(settings.usage_delivery_nice)
    try:
        import uvloop  # installed with litellm[proxy]; about a tenth less CPU per POST
    except ImportError:
        return asyncio.run(_deliver(settings))
    return uvloop.run(_deliver(settings))


# -- the parent's handle -------------------------------------------------------------


class DeliveryProcess:
    """Starts the child, restarts it if it dies, and stops it with a flush budget."""

    def __init__(self, settings: UsageSettings) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        # Workers look for the lock to decide whether to send inline; make sure it is taken first.
        probe = SenderLock(self._settings.usage_spool_path)
        deadline = time.monotonic() + LOCK_WAIT_S
        while not probe.held_by_someone() and time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.02)
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="delivery-watch")
        self._watcher.start()

    def _spawn(self) -> None:
        with self._lock:
            self._proc = subprocess.Popen([sys.executable, "-m", "app", "deliver"], stdin=subprocess.PIPE)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set() or code == 0:
                return  # 0: it had nothing it could do (no usable outbox), restarting would not help
            log.error("usage_delivery_process_exited", returncode=code, action="restarting")
            if self._stopping.wait(RESTART_BACKOFF_S):
                return
            self._spawn()

    def stop(self, budget_s: float) -> int | None:
        """Ask the child to flush for up to `budget_s`, wait for it, and return its exit code."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is None:
            return None
        stdin: IO[bytes] | None = proc.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.write(f"stop {budget_s}\n".encode())
                stdin.close()
        try:
            return proc.wait(timeout=budget_s + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
