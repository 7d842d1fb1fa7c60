"""Structured logging for the whole process, with secrets redacted from every line.

structlog renders our own events; the standard-library records of LiteLLM and
uvicorn go through the same processors (`ProcessorFormatter`), so one
redaction step sees every line the process prints, at any level.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

# Raw LiteLLM virtual keys and bearer tokens never belong in a log line, whoever logs them.
_TOKEN_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',}]+"),
    re.compile(r"(?i)((?<![\w-])\"?(?:apikey|api_key|authorization|x-api-key)\"?\s*[:=]\s*\"?)[^\s\"',}]+"),
)
REDACTED = "***"


class Redactor:
    """Replaces known secret values and token-shaped strings in rendered lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str | None]) -> None:
        with self._lock:
            known = set(self._secrets)
            # Very short values would redact ordinary words; keys are long.
            known.update(s for s in secrets if s and len(s) >= 6)
            # Longest first, so a key that contains another is replaced whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _TOKEN_PATTERNS[0].sub("sk-" + REDACTED, text)
        for pattern in _TOKEN_PATTERNS[1:]:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


redactor = Redactor()


class _RedactingRenderer:
    """Runs the real renderer, then redacts the finished line."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._inner(logger, name, event_dict)
        return redactor(rendered if isinstance(rendered, str) else str(rendered))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at emit time (test capture, redirected stdout)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        # Our lines are redacted by the renderer already: skip the stream wrapper's second pass.
        out = sys.stdout
        return out._inner if isinstance(out, RedactingStream) else out

    @stream.setter
    def stream(self, _value: Any) -> None:
        return


def _add_pid(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # With NUM_WORKERS > 1, lines from different workers interleave; the pid tells them apart.
    event_dict.setdefault("pid", os.getpid())
    return event_dict


def _resolve_format(log_format: LogFormat) -> Literal["json", "console"]:
    if log_format != "auto":
        return log_format
    return "console" if sys.stdout.isatty() else "json"


LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router")
_STDLIB_LOGGERS = (*LITELLM_LOGGERS, "uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and route the standard-library loggers through it.

    Safe to call again (each uvicorn worker does): handlers are replaced, not added.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any
    if _resolve_format(log_format) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _RedactingRenderer(renderer),
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    adopt_stdlib_loggers()


def adopt_stdlib_loggers() -> None:
    """Make LiteLLM's and uvicorn's loggers print through the root handler.

    LiteLLM attaches its own stderr handlers at import; left alone they would
    print unredacted, differently formatted lines.
    """
    # LiteLLM is as verbose as it would be on its own: warnings, unless LITELLM_LOG says otherwise.
    # (Its per-request info lines cost the proxy measurable CPU; see bench/.)
    litellm_level = logging.getLevelName(os.environ.get("LITELLM_LOG", "WARNING").upper())
    for name in _STDLIB_LOGGERS:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers[:] = []
        stdlib_logger.propagate = True
        if name in LITELLM_LOGGERS:
            stdlib_logger.setLevel(litellm_level if isinstance(litellm_level, int) else logging.WARNING)


class RedactingStream:
    """A stdout/stderr stand-in that redacts whatever is written to it.

    LiteLLM also `print()`s (its model list at startup, callback lists when a
    config loads); those lines bypass logging, so the stream itself redacts.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redactor(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_redacting_streams() -> None:
    """Wrap sys.stdout and sys.stderr once (idempotent)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


def get_logger(name: str = "app") -> Any:
    return structlog.get_logger(name)
