"""The LiteLLM callback: turn each finished call into one durable usage event.

The callback does the least it can on the request path: map the call to an
event (pure), write it to the outbox (one local INSERT) and return. Delivery
happens elsewhere, normally in the delivery process (`app.delivery_process`),
so a slow or absent Supabase never slows a request, and an event is safe once
the callback returns. This worker sends inline only when no delivery process
holds the outbox's sender lock, or when the outbox had to fall back to memory.
"""

from __future__ import annotations

import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from app.delivery import Sender
from app.delivery_process import SenderLock, delivery_config
from app.logs import get_logger
from app.outbox import MemoryOutbox, Outbox, OutboxUnavailableError, PutResult, open_outbox
from app.payload import EventStatus, build_usage_event, encode_event, new_event_id
from app.settings import UsageSettings
from app.stats import UsageStats

log = get_logger("SupabaseUsageLogger")


class SupabaseUsageLogger(CustomLogger):
    """Writes one usage event per LiteLLM call and hands it to the background sender.

    All state is private (leading underscore): LiteLLM compares loggers by class
    name plus public primitive attributes, and nothing here may change that key.
    """

    def __init__(self, settings: UsageSettings) -> None:
        # No `turn_off_message_logging`: the event never carries prompts or completions anyway,
        # and asking LiteLLM to redact them builds pydantic objects on every call (measured in bench/).
        super().__init__()
        self._settings = settings
        self._stats = UsageStats()
        self._outbox: Outbox | None = None
        self._degraded_reason: str | None = None
        self._sender: Sender | None = None
        self._sender_lock = SenderLock(settings.usage_spool_path)
        self._missing = settings.missing_for_delivery()

    # -- LiteLLM's hooks (names and keyword arguments are LiteLLM's) ----------

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self.record(kwargs, response_obj, start_time, end_time, "success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self.record(kwargs, response_obj, start_time, end_time, "failure")

    # -- the request path ------------------------------------------------------

    @property
    def configured(self) -> bool:
        return not self._missing

    @property
    def stats(self) -> UsageStats:
        return self._stats

    async def record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any, status: EventStatus) -> None:
        """Map, store, wake the sender. Never raises into LiteLLM."""
        try:
            if not self.configured:
                self._stats.skipped += 1
                log.debug("usage_event_skipped", reason=f"{' and '.join(self._missing)} not set", status=status)
                return
            event_id = new_event_id()
            event = build_usage_event(kwargs, response_obj, start_time, end_time, status, event_id)
            await self.enqueue(event_id, encode_event(event))
            log.debug("usage_event_payload", event_id=event_id, payload=event)
        except Exception as exc:  # noqa: BLE001 - the proxy must never fail a request because of metering
            log.error("usage_event_not_recorded", error=f"{type(exc).__name__}: {exc}", status=status)

    async def enqueue(self, event_id: str, body: bytes) -> PutResult:
        outbox = self.outbox()
        try:
            result = await outbox.put(event_id, body)
        except OutboxUnavailableError as exc:
            outbox = self._degrade(str(exc))
            result = await outbox.put(event_id, body)
        if result is PutResult.WRITTEN:
            self._stats.written += 1
            if self._sender is not None:
                self._sender.notify()
        elif result is PutResult.FULL:
            self._stats.refused += 1
            log.error(
                "usage_event_refused",
                event_id=event_id,
                reason="outbox full",
                max_rows=self._settings.usage_spool_max_rows,
                outbox_path=outbox.path,
            )
        else:
            self._stats.duplicates += 1
        return result

    # -- lifecycle ----------------------------------------------------------------

    def outbox(self) -> Outbox:
        if self._outbox is None:
            outbox, reason = open_outbox(self._settings.usage_spool_path, self._settings.usage_spool_max_rows)
            self._outbox = outbox
            if reason is not None:
                self._report_degraded(reason)
        return self._outbox

    def _degrade(self, reason: str) -> Outbox:
        if self._outbox is not None and self._outbox.durable:
            self._outbox.close()
        self._outbox = MemoryOutbox(self._settings.usage_spool_max_rows, path=str(self._settings.usage_spool_path))
        self._report_degraded(reason)
        if self.configured:
            # Only this process can see an in-memory outbox, so only it can send it.
            self._start_inline_sender("the outbox is in memory")
        return self._outbox

    def _report_degraded(self, reason: str) -> None:
        self._degraded_reason = reason
        log.error(
            "usage_outbox_degraded",
            outbox_path=str(self._settings.usage_spool_path),
            cause=reason,
            consequence="events are kept in memory only and are lost if the process stops before delivery",
        )

    def _start_inline_sender(self, reason: str) -> None:
        if self._sender is None:
            self._sender = Sender(delivery_config(self._settings), self.outbox)
            log.warning("usage_sender_inline", reason=reason, outbox_path=self.outbox().path)
        if not self._sender.running:
            self._sender.start()

    def ensure_delivery(self) -> None:
        """Make sure someone sends this outbox: the delivery process, or else this worker.

        Cheap (one non-blocking `flock` attempt); run at startup and every second.
        """
        if not self.configured or self._sender is not None:
            return
        if not self.outbox().durable:
            self._start_inline_sender("the outbox is in memory")
        elif self._sender_lock.try_acquire():
            self._start_inline_sender("no delivery process holds the sender lock")

    async def start(self) -> None:
        """Open the outbox and start sending what it already holds, before anything new."""
        if not self.configured:
            log.warning(
                "usage_logger_not_configured",
                message=f"{' and '.join(self._missing)} not set: usage events will be skipped",
                missing=self._missing,
            )
            return
        self.outbox()
        self.ensure_delivery()
        stats = await self.outbox().stats()
        log.info(
            "usage_logger_started",
            url=self._settings.supabase_litellm_usage_url,
            key_source=self._settings.api_key_source(),
            outbox_path=self.outbox().path,
            durable=self.outbox().durable,
            pending=stats.depth,
            sends_inline=self._sender is not None,
        )

    async def shutdown(self) -> None:
        if self._sender is not None:
            await self._sender.shutdown(self._settings.usage_shutdown_flush_s)
            self._sender = None
        self._sender_lock.release()
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    async def status(self) -> dict[str, Any]:
        """What `GET /usage-logger/status` returns."""
        counts: dict[str, int] = self._stats.snapshot()
        body: dict[str, Any] = {
            "configured": self.configured,
            "missing": self._missing,
            "degraded": self._degraded_reason is not None,
            "degraded_reason": self._degraded_reason,
            "counts": counts,
            "counts_scope": {
                "written, skipped, refused, duplicates, restorations": "this worker process, since it started",
                "sent, retried, dead_lettered": "every sender of this outbox file, since the file was created",
            },
            "sends_inline": self._sender is not None,
        }
        if self.configured:
            outbox = self.outbox()
            stats = await outbox.stats()
            counts.update(sent=stats.sent, retried=stats.retried, dead_lettered=stats.dead_lettered)
            body.update(
                outbox_path=outbox.path,
                outbox_durable=outbox.durable,
                outbox_depth=stats.depth,
                oldest_pending_age_s=round(time.time() - stats.oldest_created_at, 3)
                if stats.oldest_created_at
                else None,
                dead_letters=stats.dead_letters,
            )
        return body


class _PROXY_SupabaseUsageLogger(SupabaseUsageLogger):  # noqa: N801 - the name is the mechanism
    """The class the registered instance has.

    LiteLLM skips every custom logger on a request with `"no-log": true` except
    the proxy's own cost tracking, which it recognises by `_PROXY_` in the class
    name (`Logging.should_run_callback`). Usage events are billing records with no
    message content, so a caller must not be able to switch them off; other
    loggers keep honouring `no-log`.
    """
