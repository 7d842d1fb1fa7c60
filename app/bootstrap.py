"""The first steps of every entry point: settings, then logging, then redaction.

`python -m app`, the delivery process and each uvicorn worker (`app.server`)
start the same way, so a bad variable is reported the same way everywhere:
one `startup_refused` line naming it, then `SettingsError`.
"""

from __future__ import annotations

from app.logs import configure_logging, get_logger, install_redacting_streams, redactor
from app.settings import ServeSettings, SettingsError, UsageSettings, load_serve_settings, load_usage_settings


def load_and_configure() -> tuple[ServeSettings, UsageSettings]:
    try:
        serve = load_serve_settings()
    except SettingsError as exc:
        configure_logging()  # no valid LOG_FORMAT/LOG_LEVEL to go by: the defaults
        get_logger("app").error("startup_refused", error=str(exc))
        raise
    configure_logging(serve.log_format, serve.log_level)
    install_redacting_streams()
    try:
        usage = load_usage_settings()
    except SettingsError as exc:
        get_logger("app").error("startup_refused", error=str(exc))
        raise
    redactor.add(usage.secrets())
    if serve.litellm_master_key is not None:
        redactor.add([serve.litellm_master_key.get_secret_value()])
    return serve, usage
