"""Real local processes for end-to-end tests: the proxy, the upstream and the edge function.

Everything listens on 127.0.0.1 only. The proxy is started exactly as Railway
starts it: the `web:` command from the Procfile, run by bash with `$PORT` set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MASTER_KEY = "sk-test-master-key-0123456789"
SUPABASE_KEY = "test-anon-key-abcdefghijklmnop"
UPSTREAM_KEY = "sk-upstream-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def procfile_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("Procfile has no web: line")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "USAGE_", "LITELLM_", "DATABASE_URL"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


@dataclass
class Process:
    """A child process whose output goes to a file we can read at any time."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        return lines

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return int(self.popen.returncode)


def start_process(
    name: str,
    args: list[str],
    env: dict[str, str],
    port: int,
    ready: Callable[[str], bool],
    timeout: float = 90.0,
    shell: bool = False,
) -> Process:
    log_path = Path(tempfile.mkdtemp(prefix=f"{name}-")) / "output.log"
    handle = log_path.open("wb")
    popen = subprocess.Popen(
        args if not shell else args[0],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        shell=shell,
        executable="/bin/bash" if shell else None,
        start_new_session=True,
    )
    proc = Process(name, popen, log_path, f"http://{LOOPBACK}:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise AssertionError(f"{name} exited with {popen.returncode}:\n{proc.output()[-4000:]}")
        if ready(proc.url):
            return proc
        time.sleep(0.2)
    proc.stop()
    raise AssertionError(f"{name} not ready after {timeout}s:\n{proc.output()[-4000:]}")


def http_ready(path: str) -> Callable[[str], bool]:
    def check(url: str) -> bool:
        try:
            return httpx.get(url + path, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def start_upstream() -> Process:
    port = free_port()
    return start_process(
        "upstream",
        [sys.executable, "-m", "tests.standins.openai_upstream", "--port", str(port)],
        base_env(),
        port,
        http_ready("/v1/models"),
        timeout=20,
    )


@dataclass
class Edge:
    """The stand-in edge function and helpers to read and steer it."""

    process: Process

    @property
    def url(self) -> str:
        return self.process.url + "/functions/v1/litellm-usage"

    def control(self, **settings: Any) -> None:
        httpx.post(self.process.url + "/_control", json=settings, timeout=5).raise_for_status()

    def reset(self) -> None:
        self.control(reset=True, fail_first=0, fail_status=503, status=200, delay_s=0.0, retry_after=None, hold=False)

    def state(self) -> dict[str, Any]:
        return dict(httpx.get(self.process.url + "/_events", timeout=5).json())

    def events(self) -> list[dict[str, Any]]:
        return list(self.state()["events"])

    def wait_for(self, count: int, timeout: float = 20.0, settle: float = 0.5) -> list[dict[str, Any]]:
        """Wait until `count` events arrived, then a moment more to catch any extra."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                time.sleep(settle)
                return self.events()
            time.sleep(0.1)
        return self.events()


def start_edge(port: int | None = None, extra: list[str] | None = None) -> Edge:
    port = port or free_port()
    args = [sys.executable, "-m", "tests.standins.edge_function", "--port", str(port), *(extra or [])]
    return Edge(start_process("edge", args, base_env(), port, http_ready("/_events"), timeout=20))


def proxy_config(upstream_url: str, callbacks: Any = None, extra_litellm: dict[str, Any] | None = None) -> str:
    """A config.yaml for the stand-in upstream; `callbacks` as the seed guide wrote it (or not)."""
    api_base = upstream_url + "/v1"
    models = [
        ("gpt-4o-mini", "openai/gpt-4o-mini"),
        ("text-embedding-3-small", "openai/text-embedding-3-small"),
        ("broken-model", "openai/fail-model"),
    ]
    model_list = [
        {"model_name": name, "litellm_params": {"model": target, "api_base": api_base, "api_key": UPSTREAM_KEY}}
        for name, target in models
    ]
    litellm_settings: dict[str, Any] = {"num_retries": 0, **(extra_litellm or {})}
    if callbacks is not None:
        litellm_settings["callbacks"] = callbacks
    config = {
        "model_list": model_list,
        "litellm_settings": litellm_settings,
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class Proxy:
    process: Process
    port: int
    config_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=MASTER_KEY, max_retries=0, **kwargs)

    def status(self) -> dict[str, Any]:
        response = httpx.get(
            self.url + "/usage-logger/status", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=5
        )
        response.raise_for_status()
        return dict(response.json())

    def stop(self, timeout: float = 30.0) -> int:
        return self.process.stop(timeout)


def proxy_env(edge_url: str | None, spool_path: Path, config_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update(
        PORT=str(port),
        HOST=LOOPBACK,
        CONFIG_FILE_PATH=str(config_path),
        LITELLM_MASTER_KEY=MASTER_KEY,
        SUPABASE_ANON_KEY=SUPABASE_KEY,
        USAGE_SPOOL_PATH=str(spool_path),
        USAGE_RETRY_MAX_S="1",
    )
    if edge_url:
        env["SUPABASE_LITELLM_USAGE_URL"] = edge_url
    env.update(extra)
    return env


def start_proxy(
    config_text: str,
    edge_url: str | None,
    *,
    workdir: Path,
    command: str | None = None,
    timeout: float = 120.0,
    **extra_env: str,
) -> Proxy:
    """Start the proxy via the Procfile's web command (or `command`), wait for liveliness."""
    port = free_port()
    config_path = workdir / "config.yaml"
    config_path.write_text(config_text)
    env = proxy_env(edge_url, workdir / "spool" / "usage.db", config_path, port, **extra_env)
    process = start_process(
        "proxy",
        [command or procfile_command()],
        env,
        port,
        http_ready("/health/liveliness"),
        timeout=timeout,
        shell=True,
    )
    # Liveliness answers before the lifespan finished; wait for our post-startup line.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "after proxy startup" in process.output():
            break
        time.sleep(0.1)
    return Proxy(process, port, config_path, env)


def registered_lines(process: Process) -> list[dict[str, Any]]:
    return [line for line in process.json_lines() if str(line.get("event", "")).startswith("Registered callbacks")]


def no_secret_in(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and re.search(re.escape(s), text)]


@contextlib.contextmanager
def running(proc: Proxy | Process | Edge) -> Iterator[Any]:
    try:
        yield proc
    finally:
        target = proc.process if isinstance(proc, (Proxy, Edge)) else proc
        target.stop()
