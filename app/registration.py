"""Exactly one usage logger, first in every list LiteLLM dispatches from, whatever happens.

LiteLLM keeps callbacks in several module-level lists and rewrites them from
config.yaml, from the database config sync and per request. Registration here
is by identity (the one instance), bypasses LiteLLM's deduplication and
`LITELLM_MAX_CALLBACKS` cap, and `ensure_registered` can be run again at any
time to put things back; it reports what it had to change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import litellm

from app.logs import get_logger
from app.settings import UsageSettings, load_usage_settings
from app.usage_logger import SupabaseUsageLogger, _PROXY_SupabaseUsageLogger

log = get_logger("app.registration")

CALLBACK_NAME = "custom_callbacks.supabase_usage_logger"

# `callbacks` is what users and config.yaml see; the async lists are what LiteLLM
# actually iterates for async calls (it copies `callbacks` into them per request,
# appending, which would put ours last).
GUARDED_LISTS = ("callbacks", "_async_success_callback", "_async_failure_callback")

_instance: SupabaseUsageLogger | None = None
_instance_lock = threading.Lock()


def get_usage_logger(settings: UsageSettings | None = None) -> SupabaseUsageLogger:
    """The process's one logger instance, built on first use."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = _PROXY_SupabaseUsageLogger(settings or load_usage_settings())
        return _instance


def _as_list(name: str) -> list[Any]:
    current = getattr(litellm, name, None)
    if isinstance(current, list):
        return current
    # config.yaml can leave a non-list here; LiteLLM itself would fail on it later.
    replacement: list[Any] = [] if current is None else [current]
    setattr(litellm, name, replacement)
    return replacement


@dataclass(frozen=True, slots=True)
class Change:
    """One repair `ensure_registered` made. `expected` ones are routine, not a restoration."""

    list_name: str
    detail: str
    expected: bool = False

    def __str__(self) -> str:
        return f"{self.list_name}: {self.detail}"


def ensure_registered(logger: SupabaseUsageLogger) -> list[Change]:
    """Make `logger` appear exactly once, first, in each guarded list. Returns what changed."""
    changes: list[Change] = []
    for name in GUARDED_LISTS:
        entries = _as_list(name)
        ours = [i for i, cb in enumerate(entries) if cb is logger]
        # Another instance of our class (a stale import) would meter every call twice.
        strays = sum(1 for cb in entries if isinstance(cb, SupabaseUsageLogger) and cb is not logger)
        if ours == [0] and not strays:
            continue
        if not ours:
            changes.append(Change(name, "usage logger was missing, restored"))
        elif ours[0] != 0:
            changes.append(Change(name, f"usage logger was at position {ours[0]}, moved first"))
        if len(ours) > 1:
            # config.yaml naming custom_callbacks.supabase_usage_logger appends the same instance again.
            changes.append(Change(name, f"usage logger was listed {len(ours)} times, deduplicated", expected=True))
        if strays:
            changes.append(Change(name, f"removed {strays} other usage logger instance(s)"))
        # Mutate in place: LiteLLM code may hold a reference to this very list.
        entries[:] = [cb for cb in entries if not isinstance(cb, SupabaseUsageLogger)]
        entries.insert(0, logger)
    return changes


def callback_names() -> list[str]:
    """Human names of `litellm.callbacks` (ours under the name config.yaml uses)."""
    manager = litellm.logging_callback_manager
    names: list[str] = []
    for cb in litellm.callbacks:
        if isinstance(cb, SupabaseUsageLogger):
            names.append(CALLBACK_NAME)
        else:
            try:
                names.append(manager._get_callback_string(cb))
            except Exception:  # noqa: BLE001 - a name is cosmetic; never fail over it
                names.append(type(cb).__name__)
    return names


def log_registered(stage: str) -> None:
    """The `Registered callbacks: [...]` line users look for, as one event."""
    names = callback_names()
    log.info(f"Registered callbacks: {names}", stage=stage, callbacks=names)


def register(logger: SupabaseUsageLogger, stage: str) -> list[Change]:
    """Register (idempotently) and log the resulting list."""
    changes = ensure_registered(logger)
    log_registered(stage)
    return changes


class RegistrationGuard:
    """Keeps the promise at run time: checks after each DB config sync and on a timer."""

    def __init__(self, logger: SupabaseUsageLogger) -> None:
        self._logger = logger

    def check(self, reason: str) -> list[Change]:
        changes = ensure_registered(self._logger)
        surprises = [str(c) for c in changes if not c.expected]
        if surprises:
            self._logger.stats.restorations += 1
            log.warning("usage_logger_restored", reason=reason, changes=surprises, callbacks=callback_names())
        elif changes:
            log.info("usage_logger_deduplicated", reason=reason, changes=[str(c) for c in changes])
        return changes

    def hook_db_config_sync(self) -> None:
        """Wrap LiteLLM's DB callback sync so every sync ends with our check.

        `ProxyConfig._add_callbacks_from_db_config` runs on every config poll and
        adds or removes the callbacks saved in the admin UI.
        """
        from litellm.proxy.proxy_server import ProxyConfig

        original = ProxyConfig._add_callbacks_from_db_config
        if getattr(original, "_usage_guarded", False):
            return
        guard = self

        def guarded(proxy_config: Any, config_data: dict[str, Any]) -> None:
            try:
                original(proxy_config, config_data)
            finally:
                guard.check("after database config sync")

        guarded._usage_guarded = True  # type: ignore[attr-defined]
        ProxyConfig._add_callbacks_from_db_config = guarded
