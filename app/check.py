"""`python -m app check`: the seed guide's verification steps as one command.

Loads settings and config.yaml the way startup does (through LiteLLM's own
`ProxyConfig.load_config`), prints what it found with keys masked, the
callbacks that would be registered, and optionally posts one test event.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from app.delivery import build_session, post_event
from app.delivery_process import delivery_config
from app.payload import check_event, encode_event, new_event_id
from app.settings import SettingsError, UsageSettings, load_usage_settings


def mask(secret: str | None) -> str:
    """Enough to tell two keys apart, never enough to use one."""
    if not secret:
        return "(not set)"
    return f"{secret[:4]}…({len(secret)} chars)" if len(secret) > 12 else "***"


def describe(settings: UsageSettings) -> list[str]:
    key = settings.api_key()
    return [
        f"SUPABASE_LITELLM_USAGE_URL = {settings.supabase_litellm_usage_url or '(not set)'}",
        f"key used                   = {settings.api_key_source() or '(none)'}: {mask(key)}",
        f"USAGE_LOGGER_REQUIRED      = {str(settings.usage_logger_required).lower()}",
        f"USAGE_SPOOL_PATH           = {settings.usage_spool_path}",
        f"USAGE_SPOOL_MAX_ROWS       = {settings.usage_spool_max_rows}",
        f"USAGE_MAX_IN_FLIGHT        = {settings.usage_max_in_flight}",
        f"USAGE_RETRY_MAX_S          = {settings.usage_retry_max_s}",
        f"USAGE_SHUTDOWN_FLUSH_S     = {settings.usage_shutdown_flush_s}",
        f"CONFIG_FILE_PATH           = {os.environ.get('CONFIG_FILE_PATH') or '(not set)'}",
    ]


async def callbacks_after_config_load(settings: UsageSettings) -> list[str]:
    """Load config.yaml with LiteLLM's own loader, then register as startup does."""
    from litellm.proxy import proxy_server

    from app.logs import adopt_stdlib_loggers
    from app.registration import callback_names, ensure_registered, get_usage_logger

    adopt_stdlib_loggers()  # LiteLLM attached its own (unredacted) handlers while importing

    logger = get_usage_logger(settings)
    ensure_registered(logger)
    config_path = os.environ.get("CONFIG_FILE_PATH")
    if config_path:
        await proxy_server.proxy_config.load_config(router=None, config_file_path=config_path)
    ensure_registered(logger)
    return callback_names()


async def post_test_event(settings: UsageSettings) -> tuple[bool, str]:
    """One event with `status: "test"`, sent exactly as the sender sends (same function, same headers)."""
    try:
        config = delivery_config(settings)
    except ValueError as exc:
        return False, f"cannot send: {exc}"
    event_id = new_event_id()
    async with build_session(config) as session:
        result = await post_event(session, config.url, config.api_key, event_id, encode_event(check_event(event_id)))
    if result.status is None:
        return False, f"test event {event_id} not delivered: {result.detail}"
    ok = 200 <= result.status < 300
    verdict = "delivered" if ok else "refused"
    return ok, f"test event {event_id} {verdict}: HTTP {result.status} {result.detail}".rstrip()


def run_check(send_test_event: bool = False, out: Any = print) -> int:
    from app.logs import configure_logging, redactor

    configure_logging(log_format=os.environ.get("LOG_FORMAT", "auto").lower(), level="warning")  # type: ignore[arg-type]
    try:
        settings = load_usage_settings()
    except SettingsError as exc:
        out(f"FAIL settings: {exc}")
        return 2
    redactor.add(settings.secrets())
    for line in describe(settings):
        out(line)
    missing = settings.missing_for_delivery()
    if missing:
        out(f"WARN usage events will be skipped: {' and '.join(missing)} not set")
    try:
        names = asyncio.run(callbacks_after_config_load(settings))
    except Exception as exc:  # noqa: BLE001 - any config error is reported, not raised
        out(f"FAIL loading config: {type(exc).__name__}: {exc}")
        return 1
    out(f"Registered callbacks: {names}")
    status = 0
    if send_test_event:
        ok, message = asyncio.run(post_test_event(settings))
        out(("OK " if ok else "FAIL ") + message)
        status = 0 if ok else 1
    return status
