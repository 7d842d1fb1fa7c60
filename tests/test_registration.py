"""Registration that nothing can undo, driven through LiteLLM 1.108.7's own code paths.

Each test names the LiteLLM path it exercises. Calls go through
`litellm.acompletion(mock_response=...)`, i.e. LiteLLM's real per-call
callback setup and logging worker; only the outbox write is replaced by a
list, so each test counts exactly the events the logger would store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.litellm_core_utils.logging_callback_manager import LoggingCallbackManager

from app import registration
from app.outbox import PutResult
from app.registration import (
    CALLBACK_NAME,
    GUARDED_LISTS,
    RegistrationGuard,
    callback_names,
    ensure_registered,
    get_usage_logger,
)
from app.settings import UsageSettings
from app.usage_logger import SupabaseUsageLogger, _PROXY_SupabaseUsageLogger
from tests.fixtures import other_callbacks

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ALL_LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback")


class Recorded(list[dict[str, Any]]):
    async def settle(self, expected: int, timeout: float = 10.0) -> None:
        """Wait for `expected` events, then a little longer so an extra one would show."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self) < expected and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)


@pytest.fixture(autouse=True)
def isolated_callbacks() -> Iterator[None]:
    saved = {name: list(getattr(litellm, name)) for name in ALL_LISTS}
    for name in ALL_LISTS:
        setattr(litellm, name, [])
    other_callbacks.other_logger.events.clear()
    yield
    for name, value in saved.items():
        setattr(litellm, name, value)


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: Recorded) -> SupabaseUsageLogger:
    """The process's logger for this test: configured, its outbox write replaced by `recorded`."""
    settings = UsageSettings(
        supabase_litellm_usage_url="https://proj.supabase.co/functions/v1/litellm-usage",
        supabase_anon_key="test-anon-key-123456",  # type: ignore[arg-type]
        usage_spool_path=tmp_path / "o.db",
    )
    instance = _PROXY_SupabaseUsageLogger(settings)

    async def enqueue(event_id: str, body: bytes) -> PutResult:
        recorded.append(json.loads(body))
        return PutResult.WRITTEN

    monkeypatch.setattr(instance, "enqueue", enqueue)
    monkeypatch.setattr(registration, "_instance", instance)
    return instance


async def call_model(times: int = 1, **extra: Any) -> None:
    for _ in range(times):
        await litellm.acompletion(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="ok", **extra
        )


def assert_once_and_first(logger: SupabaseUsageLogger) -> None:
    for name in GUARDED_LISTS:
        entries = getattr(litellm, name)
        assert entries[0] is logger, f"{name} does not start with the usage logger"
        assert sum(isinstance(cb, SupabaseUsageLogger) for cb in entries) == 1, f"{name} has it more than once"


def initialize_from_config(value: Any, config_dir: Path = ROOT) -> None:
    """LiteLLM's handler for `litellm_settings.callbacks` (proxy/common_utils/callback_utils.py)."""
    from litellm.proxy.common_utils.callback_utils import initialize_callbacks_on_proxy

    initialize_callbacks_on_proxy(
        value=value, premium_user=False, config_file_path=str(config_dir / "config.yaml"), litellm_settings={}
    )


# -- exactly once, by identity ---------------------------------------------------


async def test_registration_is_idempotent_and_meters_once(logger: SupabaseUsageLogger, recorded: Recorded) -> None:
    for _ in range(3):
        ensure_registered(logger)
    assert_once_and_first(logger)
    await call_model(2)
    await recorded.settle(2)
    assert len(recorded) == 2
    assert callback_names()[0] == CALLBACK_NAME


def test_custom_callbacks_module_is_the_same_instance(logger: SupabaseUsageLogger) -> None:
    from litellm.proxy.types_utils.utils import get_instance_fn

    import custom_callbacks

    assert custom_callbacks.supabase_usage_logger is get_usage_logger()
    # LiteLLM loads it from the config directory as a fresh module object: still the same logger.
    loaded = get_instance_fn(CALLBACK_NAME, config_file_path=str(ROOT / "config.yaml"))
    assert loaded is logger


async def test_config_list_form_naming_ours_gives_one_event(logger: SupabaseUsageLogger, recorded: Recorded) -> None:
    ensure_registered(logger)
    initialize_from_config([CALLBACK_NAME])
    # LiteLLM extends the list without deduplicating: the same instance is now listed twice...
    assert sum(cb is logger for cb in litellm.callbacks) == 2
    changes = ensure_registered(logger)
    assert changes and all(change.expected for change in changes)
    assert_once_and_first(logger)
    await call_model(3)
    await recorded.settle(3)
    assert len(recorded) == 3


async def test_config_string_form_naming_ours(logger: SupabaseUsageLogger, recorded: Recorded) -> None:
    ensure_registered(logger)
    initialize_from_config(CALLBACK_NAME)
    ensure_registered(logger)
    assert_once_and_first(logger)
    await call_model()
    await recorded.settle(1)
    assert len(recorded) == 1


async def test_config_string_naming_another_callback_replaces_the_list_and_is_repaired(
    logger: SupabaseUsageLogger, recorded: Recorded
) -> None:
    ensure_registered(logger)
    initialize_from_config("other_callbacks.other_logger", config_dir=FIXTURES)
    assert all(cb is not logger for cb in litellm.callbacks), "LiteLLM replaced the whole list"
    guard = RegistrationGuard(logger)
    assert any("restored" in str(change) for change in guard.check("after config load"))
    assert logger.stats.restorations == 1
    assert_once_and_first(logger)
    await call_model(2)
    await recorded.settle(2)
    assert len(recorded) == 2


async def test_success_and_failure_callback_keys_and_a_full_config_load(
    logger: SupabaseUsageLogger, recorded: Recorded, tmp_path: Path
) -> None:
    """`ProxyConfig.load_config` with `callbacks` as a string and `success_callback`/`failure_callback` set."""
    from litellm.proxy.proxy_server import proxy_config

    (tmp_path / "other_callbacks.py").write_text((FIXTURES / "other_callbacks.py").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [],
                "litellm_settings": {
                    "callbacks": "other_callbacks.other_logger",
                    "success_callback": [CALLBACK_NAME],
                    "failure_callback": [CALLBACK_NAME],
                },
            }
        )
    )
    (tmp_path / "custom_callbacks.py").write_text((ROOT / "custom_callbacks.py").read_text())
    ensure_registered(logger)
    await proxy_config.load_config(router=None, config_file_path=str(config))
    assert all(cb is not logger for cb in litellm.callbacks)
    RegistrationGuard(logger).check("after config load")
    assert_once_and_first(logger)
    await call_model(2)
    await recorded.settle(2)
    assert len(recorded) == 2


# -- the database config sync ------------------------------------------------------


async def test_db_config_sync_never_removes_or_duplicates_ours(
    logger: SupabaseUsageLogger, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ProxyConfig._add_callbacks_from_db_config`, as every config poll runs it, with admin-UI callbacks."""
    from litellm.proxy.proxy_server import ProxyConfig

    monkeypatch.setattr(ProxyConfig, "_add_callbacks_from_db_config", ProxyConfig._add_callbacks_from_db_config)
    guard = RegistrationGuard(logger)
    guard.hook_db_config_sync()
    ensure_registered(logger)
    proxy_config = ProxyConfig()
    ui_added = {"litellm_settings": {"callbacks": ["ui_webhook_a", CALLBACK_NAME], "success_callback": ["ui_b"]}}
    ui_removed: dict[str, Any] = {"litellm_settings": {}}
    for config in (ui_added, ui_removed, ui_added, ui_removed):
        proxy_config._add_callbacks_from_db_config(config)
        assert_once_and_first(logger)
    # Whatever removed it between polls, the next sync puts it back and counts the repair.
    litellm.callbacks.remove(logger)
    proxy_config._add_callbacks_from_db_config(ui_added)
    assert_once_and_first(logger)
    assert logger.stats.restorations >= 1
    await call_model(2)
    await recorded.settle(2)
    assert len(recorded) == 2


# -- LiteLLM's deduplication and cap -------------------------------------------------


async def test_dedup_key_is_stable_and_has_no_public_counters(logger: SupabaseUsageLogger, recorded: Recorded) -> None:
    manager = LoggingCallbackManager()
    key_before = manager._get_custom_logger_key(logger)
    ensure_registered(logger)
    await call_model(3)
    await recorded.settle(3)
    assert manager._get_custom_logger_key(logger) == key_before
    public = {k: v for k, v in vars(logger).items() if not k.startswith("_") and isinstance(v, (str, int, bool))}
    assert public == {"message_logging": True, "turn_off_message_logging": False}


async def test_a_second_instance_never_meters_twice(
    logger: SupabaseUsageLogger, recorded: Recorded, tmp_path: Path
) -> None:
    stray = _PROXY_SupabaseUsageLogger(UsageSettings(usage_spool_path=tmp_path / "stray.db"))
    ensure_registered(logger)
    litellm.callbacks.append(stray)  # e.g. someone built another instance and appended it directly
    litellm._async_success_callback.append(stray)
    changes = ensure_registered(logger)
    assert any("other usage logger" in str(c) for c in changes)
    assert_once_and_first(logger)
    await call_model()
    await recorded.settle(1)
    assert len(recorded) == 1


def test_a_full_callback_list_cannot_keep_ours_out(logger: SupabaseUsageLogger) -> None:
    from litellm.constants import MAX_CALLBACKS

    litellm.callbacks = [other_callbacks.OtherLogger() for _ in range(MAX_CALLBACKS)]
    litellm.logging_callback_manager.add_litellm_callback(logger)
    assert logger not in litellm.callbacks, "LiteLLM refuses callbacks past LITELLM_MAX_CALLBACKS"
    ensure_registered(logger)
    assert_once_and_first(logger)


# -- callers cannot switch metering off ------------------------------------------------


async def test_no_log_request_is_still_metered_and_other_loggers_still_skip(
    logger: SupabaseUsageLogger, recorded: Recorded
) -> None:
    other = other_callbacks.other_logger
    ensure_registered(logger)
    litellm.callbacks.append(other)
    await call_model(2, **{"no-log": True})
    await recorded.settle(2)
    assert len(recorded) == 2
    assert other.events == [], "no-log must keep working for every other logger"
    await call_model(1)
    await recorded.settle(3)
    assert other.events == ["success"]


def test_disable_callbacks_header_and_key_setting_cannot_switch_ours_off(
    logger: SupabaseUsageLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litellm_enterprise.enterprise_callbacks.callback_controls import EnterpriseCallbackControls

    # As on a premium proxy with allow_dynamic_callback_disabling: the check is live.
    monkeypatch.setattr(EnterpriseCallbackControls, "_should_allow_dynamic_callback_disabling", lambda: True)
    names = f"{CALLBACK_NAME},supabase_usage_logger,SupabaseUsageLogger,_PROXY_SupabaseUsageLogger,langfuse"
    params: dict[str, Any] = {"proxy_server_request": {"headers": {"x-litellm-disable-callbacks": names}}}
    dynamic: Any = {"litellm_disabled_callbacks": names.split(",")}
    assert EnterpriseCallbackControls.is_callback_disabled_dynamically("langfuse", params, dynamic) is True
    assert EnterpriseCallbackControls.is_callback_disabled_dynamically(logger, params, dynamic) is False
    assert EnterpriseCallbackControls.is_callback_disabled_dynamically(logger, {}, dynamic) is False


# -- a slow logger cannot get ours cancelled -------------------------------------------


async def test_a_slow_logger_cannot_get_ours_cancelled(
    logger: SupabaseUsageLogger, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    # LiteLLM runs a call's success callbacks one after another under one timeout (20 s by default).
    monkeypatch.setattr(GLOBAL_LOGGING_WORKER, "timeout", 0.5)
    slow = other_callbacks.slow_logger
    litellm.callbacks[:] = [slow]
    litellm._async_success_callback[:] = [slow, logger]  # ours after a slow one: what the guard prevents
    await call_model()
    await recorded.settle(1, timeout=1.5)
    assert recorded == [], "behind a slow logger ours is cancelled"
    ensure_registered(logger)
    await call_model()
    await recorded.settle(1, timeout=3)
    assert len(recorded) == 1
