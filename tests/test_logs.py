"""Redaction: no key, Authorization value or master key in any line, from any logger, at any level."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.logs import RedactingStream, configure_logging, get_logger, redactor

ANON = "anon-key-that-must-not-leak-123"
MASTER = "sk-master-key-that-must-not-leak"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureFixture[str]:
    configure_logging("json", "debug")
    redactor.add([ANON, MASTER])
    return capsys


def test_structlog_lines_are_json_and_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    get_logger("t").debug("payload", headers={"Authorization": f"Bearer {ANON}", "apikey": ANON}, key=MASTER)
    out = json_logs.readouterr().out
    assert ANON not in out and MASTER not in out
    line = json.loads(out.strip().splitlines()[-1])
    assert line["event"] == "payload" and line["level"] == "debug"


def test_stdlib_loggers_of_litellm_and_uvicorn_are_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("LiteLLM Proxy").warning("calling with api_key=%s and Bearer %s", "sk-raw-virtual-key-999", ANON)
    logging.getLogger("uvicorn.error").error("master key %s", MASTER)
    out = json_logs.readouterr().out
    assert "sk-raw-virtual-key-999" not in out and ANON not in out and MASTER not in out
    assert all(json.loads(line) for line in out.strip().splitlines())


def test_printed_lines_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    redactor.add([ANON])
    stream = RedactingStream(sys.stdout)
    print(f"Initialized callbacks with key {ANON}", file=stream)  # as LiteLLM's print() calls do
    assert ANON not in capsys.readouterr().out


def test_token_shapes_are_redacted_even_when_unknown() -> None:
    text = redactor('{"authorization": "Bearer abc.def.ghi", "apikey": "zzz-unknown", "k": "sk-abcdef123456"}')
    assert "abc.def.ghi" not in text and "zzz-unknown" not in text and "sk-abcdef123456" not in text


def test_console_format_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console", "info")
    get_logger("t").info("hello", n=1)
    out = capsys.readouterr().out
    assert "hello" in out and not out.lstrip().startswith("{")
