"""`python -m app check`: the seed guide's verification steps as one command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.check import mask
from app.registration import CALLBACK_NAME
from tests.harness import ROOT, SUPABASE_KEY, Edge, base_env, proxy_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def run_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "check", *args],
        cwd=ROOT,
        env={**base_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    # A config whose `callbacks:` string names another callback: check must still show ours.
    (tmp_path / "other_callbacks.py").write_text((FIXTURES / "other_callbacks.py").read_text())
    path = tmp_path / "config.yaml"
    path.write_text(proxy_config("http://127.0.0.1:9", callbacks="other_callbacks.other_logger"))
    return path


def test_check_prints_masked_settings_and_the_callbacks(config_path: Path, edge: Edge) -> None:
    result = run_check(
        {
            "SUPABASE_LITELLM_USAGE_URL": edge.url,
            "SUPABASE_ANON_KEY": SUPABASE_KEY,
            "CONFIG_FILE_PATH": str(config_path),
            "LITELLM_MASTER_KEY": "sk-check-master-0000",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SUPABASE_KEY not in result.stdout + result.stderr
    # LiteLLM's own stderr handler (unredacted, plain text) must not survive the import.
    assert ":WARNING:" not in result.stdout + result.stderr
    assert mask(SUPABASE_KEY) in result.stdout and "SUPABASE_ANON_KEY" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("Registered callbacks:"))
    assert CALLBACK_NAME in line and "OtherLogger" in line
    assert edge.events() == [], "plain check sends nothing"


def test_check_fails_naming_the_variable_when_required(config_path: Path) -> None:
    result = run_check({"USAGE_LOGGER_REQUIRED": "true", "SUPABASE_ANON_KEY": SUPABASE_KEY})
    assert result.returncode != 0
    assert "SUPABASE_LITELLM_USAGE_URL" in result.stdout


def test_check_sends_one_test_event(edge: Edge) -> None:
    result = run_check({"SUPABASE_LITELLM_USAGE_URL": edge.url, "SUPABASE_ANON_KEY": SUPABASE_KEY}, "--send-test-event")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK test event" in result.stdout and "HTTP 200" in result.stdout
    [event] = edge.events()
    assert event["body"]["status"] == "test"
    assert event["headers"]["authorization"] == f"Bearer {SUPABASE_KEY}" and event["headers"]["apikey"] == SUPABASE_KEY
    assert event["headers"]["idempotency-key"] == event["body"]["event_id"]
    json.dumps(event["body"])


def test_check_reports_a_refused_test_event(edge: Edge) -> None:
    edge.control(status=401)
    result = run_check({"SUPABASE_LITELLM_USAGE_URL": edge.url, "SUPABASE_ANON_KEY": SUPABASE_KEY}, "--send-test-event")
    assert result.returncode == 1
    assert "FAIL test event" in result.stdout and "HTTP 401" in result.stdout


def test_check_reports_an_unreachable_edge_function() -> None:
    url = "http://127.0.0.1:9/functions/v1/litellm-usage"
    result = run_check({"SUPABASE_LITELLM_USAGE_URL": url, "SUPABASE_ANON_KEY": SUPABASE_KEY}, "--send-test-event")
    assert result.returncode == 1 and "not delivered" in result.stdout


def test_mask_never_shows_a_usable_key() -> None:
    assert mask(None) == "(not set)"
    assert mask("short") == "***"
    masked = mask("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.long")
    assert masked.startswith("eyJh") and "long" not in masked
