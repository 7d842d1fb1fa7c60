"""Settings: which key is used, what stops the process, what is refused."""

from __future__ import annotations

import pytest

from app.settings import SettingsError, is_loopback_host, load_serve_settings, load_usage_settings

VARS = (
    "SUPABASE_LITELLM_USAGE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "USAGE_LOGGER_REQUIRED",
    "PORT",
    "HOST",
    "NUM_WORKERS",
)
URL = "https://proj.supabase.co/functions/v1/litellm-usage"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)


def test_anon_key_preferred_when_both_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_ANON_KEY", "anon-key-value")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-value")
    settings = load_usage_settings()
    assert settings.api_key() == "anon-key-value"
    assert settings.api_key_source() == "SUPABASE_ANON_KEY"


def test_service_role_key_used_when_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-value")
    assert load_usage_settings().api_key() == "service-key-value"


def test_blank_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_LITELLM_USAGE_URL", "  ")
    monkeypatch.setenv("SUPABASE_ANON_KEY", "")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key-value")
    settings = load_usage_settings()
    assert settings.supabase_litellm_usage_url is None
    assert settings.api_key() == "service-key-value"
    assert settings.missing_for_delivery() == ["SUPABASE_LITELLM_USAGE_URL"]


def test_unset_url_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_usage_settings().missing_for_delivery() == [
        "SUPABASE_LITELLM_USAGE_URL",
        "SUPABASE_ANON_KEY or SUPABASE_SERVICE_ROLE_KEY",
    ]


@pytest.mark.parametrize(
    ("url", "key", "named"),
    [(None, "k" * 10, "SUPABASE_LITELLM_USAGE_URL"), (URL, None, "SUPABASE_ANON_KEY or SUPABASE_SERVICE_ROLE_KEY")],
)
def test_required_refuses_with_the_missing_variable_named(
    monkeypatch: pytest.MonkeyPatch, url: str | None, key: str | None, named: str
) -> None:
    monkeypatch.setenv("USAGE_LOGGER_REQUIRED", "true")
    if url:
        monkeypatch.setenv("SUPABASE_LITELLM_USAGE_URL", url)
    if key:
        monkeypatch.setenv("SUPABASE_ANON_KEY", key)
    with pytest.raises(SettingsError, match=named):
        load_usage_settings()


@pytest.mark.parametrize("url", ["http://proj.supabase.co/fn", "http://10.0.0.5/fn", "ftp://x/y", "not a url"])
def test_cleartext_or_odd_urls_are_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SUPABASE_LITELLM_USAGE_URL", url)
    with pytest.raises(SettingsError, match="SUPABASE_LITELLM_USAGE_URL"):
        load_usage_settings()


@pytest.mark.parametrize("url", ["http://127.0.0.1:54321/fn", "http://localhost/fn", "http://[::1]:9/fn", URL])
def test_https_and_loopback_http_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SUPABASE_LITELLM_USAGE_URL", url)
    assert load_usage_settings().supabase_litellm_usage_url == url


def test_keys_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_ANON_KEY", "super-secret-anon-key")
    settings = load_usage_settings()
    assert "super-secret-anon-key" not in repr(settings) and "super-secret-anon-key" not in str(settings)


def test_serve_defaults_and_railway_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (load_serve_settings().host, load_serve_settings().port, load_serve_settings().num_workers) == (
        "0.0.0.0",
        4000,
        1,
    )
    monkeypatch.setenv("PORT", "8123")
    assert load_serve_settings().port == 8123
    monkeypatch.setenv("PORT", "nope")
    with pytest.raises(SettingsError, match="PORT"):
        load_serve_settings()


def test_loopback_detection() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("example.com") and not is_loopback_host("10.1.1.1") and not is_loopback_host(None)
