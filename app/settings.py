"""Settings read from the environment, validated once at startup.

Two groups: what the usage logger needs (`UsageSettings`) and how the process
serves (`ServeSettings`). Keys are `SecretStr` so that printing a settings
object, or logging it by accident, never shows a key.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class SettingsError(ValueError):
    """Settings that must stop the process; the message names the variable."""


def is_loopback_host(host: str | None) -> bool:
    """True for hosts whose traffic never leaves the machine."""
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class UsageSettings(BaseSettings):
    """Where usage events go, how hard we try, and where they wait meanwhile."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    supabase_litellm_usage_url: str | None = None
    supabase_anon_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    usage_logger_required: bool = False

    usage_spool_path: Path = Path("data/usage-spool.db")
    usage_spool_max_rows: int = Field(default=1_000_000, ge=1)
    usage_max_in_flight: int = Field(default=8, ge=1, le=256)
    usage_retry_max_s: float = Field(default=30.0, gt=0)
    usage_shutdown_flush_s: float = Field(default=10.0, ge=0)
    usage_http_timeout_s: float = Field(default=10.0, gt=0)
    usage_lease_s: float = Field(default=60.0, gt=0)
    # The delivery process yields the CPU to the proxy when both want it; the outbox absorbs the wait.
    usage_delivery_nice: int = Field(default=10, ge=0, le=19)

    @field_validator("supabase_litellm_usage_url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: object) -> object:
        # Railway and docker `-e VAR=` produce empty strings; treat them as unset.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("supabase_anon_key", "supabase_service_role_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("supabase_litellm_usage_url")
    @classmethod
    def _url_is_safe(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("SUPABASE_LITELLM_USAGE_URL must be an http(s) URL with a host")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            # The key rides in the headers: it must not cross a network in cleartext.
            raise ValueError(
                "SUPABASE_LITELLM_USAGE_URL must use https (plain http is accepted only for loopback hosts)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _required_means_configured(self) -> UsageSettings:
        if self.usage_logger_required:
            missing = self.missing_for_delivery()
            if missing:
                raise ValueError(f"USAGE_LOGGER_REQUIRED=true but {' and '.join(missing)} is not set")
        return self

    def missing_for_delivery(self) -> list[str]:
        """Names of the variables delivery still needs (empty when ready)."""
        missing: list[str] = []
        if self.supabase_litellm_usage_url is None:
            missing.append("SUPABASE_LITELLM_USAGE_URL")
        if self.api_key() is None:
            missing.append("SUPABASE_ANON_KEY or SUPABASE_SERVICE_ROLE_KEY")
        return missing

    def api_key(self) -> str | None:
        """The key sent to the edge function: the anon key wins when both are set."""
        for key in (self.supabase_anon_key, self.supabase_service_role_key):
            if key is not None:
                return key.get_secret_value()
        return None

    def api_key_source(self) -> str | None:
        if self.supabase_anon_key is not None:
            return "SUPABASE_ANON_KEY"
        if self.supabase_service_role_key is not None:
            return "SUPABASE_SERVICE_ROLE_KEY"
        return None

    def secrets(self) -> list[str]:
        """Every secret value these settings hold, for log redaction."""
        return [k.get_secret_value() for k in (self.supabase_anon_key, self.supabase_service_role_key) if k]


class ServeSettings(BaseSettings):
    """How the proxy is served; PORT is what Railway sets."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    port: int = Field(default=4000, ge=1, le=65535)
    num_workers: int = Field(default=1, ge=1, le=64)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    config_file_path: Path | None = None
    litellm_master_key: SecretStr | None = None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def _first_error_message(exc: ValidationError) -> str:
    """One line naming each offending variable, without echoing its value."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc.upper()}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_usage_settings() -> UsageSettings:
    """Read and validate; raise `SettingsError` with a message naming the variable."""
    try:
        return UsageSettings()
    except ValidationError as exc:
        raise SettingsError(_first_error_message(exc)) from None


def load_serve_settings() -> ServeSettings:
    try:
        return ServeSettings()
    except ValidationError as exc:
        raise SettingsError(_first_error_message(exc)) from None
