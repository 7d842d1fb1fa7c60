"""The container pieces: Dockerfile, entrypoint.sh and Procfile, linted and exercised directly.

No Docker engine runs on this machine, so the image is never built here; the
entrypoint's logic is run with stand-in `litellm` and `python` commands.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.registration import CALLBACK_NAME

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is installed by `make install` (requirements-dev.txt)"
    return str(path)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_passes_shellcheck() -> None:
    result = subprocess.run([tool("shellcheck"), str(ROOT / "entrypoint.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_the_tested_litellm_version() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^litellm\[proxy\]==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    image = re.search(r"^ARG LITELLM_VERSION=(\S+)$", dockerfile, re.M)
    assert pinned and image and pinned.group(1) == image.group(1) == "1.108.7"
    assert "FROM ${LITELLM_IMAGE}:main-v${LITELLM_VERSION}" in dockerfile


def test_dockerfile_shape() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for needle in (
        "PYTHONPATH=/app",
        "CONFIG_FILE_PATH=/app/config.yaml",
        "USAGE_SPOOL_PATH=/app/data/usage-spool.db",
        "EXPOSE 4000",
        "/health/liveliness",
        'ENTRYPOINT ["/app/entrypoint.sh"]',
    ):
        assert needle in dockerfile
    for copied in re.findall(r"^COPY (.+) /app/", dockerfile, re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), f"COPY source {source} missing"


def test_procfile_runs_the_entrypoint_on_railways_port() -> None:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("web: ./entrypoint.sh") and "$PORT" in lines[0]


def test_config_yaml_is_valid_and_names_the_logger_the_seed_way() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert CALLBACK_NAME in config["litellm_settings"]["callbacks"]


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """`litellm` and `python` that only record how they were called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, status in (("litellm", "${FAKE_LITELLM_EXIT:-0}"), ("python", "0")):
        script = bin_dir / name
        script.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$CALLS_FILE"\nexit {status}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run_entrypoint(fake_bin: Path, tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    calls = tmp_path / "calls.txt"
    base = {"PATH": f"{fake_bin}:/usr/bin:/bin", "CALLS_FILE": str(calls), **env}
    result = subprocess.run([str(ROOT / "entrypoint.sh"), "--port", "4100"], env=base, capture_output=True, text=True)
    return result.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_entrypoint_migrates_with_litellms_cli_then_execs_the_app(fake_bin: Path, tmp_path: Path) -> None:
    code, calls = run_entrypoint(
        fake_bin, tmp_path, DATABASE_URL="postgresql://u:p@127.0.0.1/db", CONFIG_FILE_PATH="/cfg/config.yaml"
    )
    assert code == 0
    assert calls == [
        "litellm --config /cfg/config.yaml --skip_server_startup",
        "python -m app --port 4100",
    ]


def test_entrypoint_without_database_skips_migrations(fake_bin: Path, tmp_path: Path) -> None:
    code, calls = run_entrypoint(fake_bin, tmp_path)
    assert code == 0 and calls == ["python -m app --port 4100"]


def test_failed_migration_stops_the_container(fake_bin: Path, tmp_path: Path) -> None:
    code, calls = run_entrypoint(fake_bin, tmp_path, DATABASE_URL="postgresql://x", FAKE_LITELLM_EXIT="3")
    assert code == 3 and len(calls) == 1 and calls[0].startswith("litellm")


def test_entrypoint_is_executable() -> None:
    assert os.access(ROOT / "entrypoint.sh", os.X_OK)
