"""`make demo`: the whole metering loop on this machine, no accounts needed.

Starts the local edge-function stand-in (it prints each event it receives),
starts the proxy the way the container does (entrypoint.sh) with a
`mock_response` model, sends one chat request, waits for the event, stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

MASTER_KEY = "sk-demo-master-key"


def wait_until(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout}s")


def main() -> int:
    edge_port, proxy_port = free_port(), free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    edge = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.edge_function", "--port", str(edge_port), "--print"], cwd=ROOT, env=env
    )
    proxy_log = Path(tempfile.mkdtemp(prefix="demo-")) / "proxy.log"
    proxy_env = {
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(proxy_port),
        "CONFIG_FILE_PATH": str(ROOT / "scripts" / "demo-config.yaml"),
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "SUPABASE_LITELLM_USAGE_URL": f"http://127.0.0.1:{edge_port}/functions/v1/litellm-usage",
        "SUPABASE_ANON_KEY": "demo-anon-key-not-a-secret",
        "USAGE_SPOOL_PATH": str(proxy_log.parent / "usage-spool.db"),
        "LOG_FORMAT": "console",
    }
    with proxy_log.open("wb") as log_file:
        proxy = subprocess.Popen(
            [str(ROOT / "entrypoint.sh")], cwd=ROOT, env=proxy_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_until(f"http://127.0.0.1:{edge_port}/_events", 20, edge)
        print(f"proxy starting on http://127.0.0.1:{proxy_port} (log: {proxy_log}) ...", flush=True)
        wait_until(f"http://127.0.0.1:{proxy_port}/health/liveliness", 120, proxy)
        for line in proxy_log.read_text().splitlines():
            if "Registered callbacks" in line:
                print("proxy:", line.strip(), flush=True)
        response = httpx.post(
            f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "demo-model", "messages": [{"role": "user", "content": "Hello!"}]},
            timeout=30,
        )
        print(f"request answered {response.status_code}: {response.json()['choices'][0]['message']['content']!r}")
        print("usage event received by the local edge function:", flush=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            events = httpx.get(f"http://127.0.0.1:{edge_port}/_events", timeout=2).json()["events"]
            if events:
                return 0
            time.sleep(0.2)
        print("no usage event arrived within 15 s; see", proxy_log)
        return 1
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)
        edge.terminate()
        edge.wait(10)


if __name__ == "__main__":
    sys.exit(main())
