"""`make bench`, part 1: what metering costs the proxy, against the limit and the alternatives.

Four proxies over the same config and the same stand-in upstream, loaded in
alternating rounds (A B C D, A B C D, ...) with wrk at a fixed concurrency:

  A  stock    the LiteLLM CLI, no usage logger (the limit)
  B  wrapper  this project (the Procfile command), outbox + background sender
  C  generic  the LiteLLM CLI with its own `generic_api` logger to the same stand-in
  D  naive    the LiteLLM CLI with a logger that awaits one POST per event, new client each time

Prints per variant the median over rounds of throughput, p50 and p99 latency,
CPU seconds per 1,000 requests, peak RSS and the share of events that reached
the edge-function stand-in within 5 s of the load's end; then ratios to A.

    python bench/run.py [--rounds 3] [--duration 10] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import (  # noqa: E402
    MASTER_KEY,
    SUPABASE_KEY,
    UPSTREAM_KEY,
    Process,
    base_env,
    free_port,
    http_ready,
    procfile_command,
    start_edge,
    start_process,
    start_upstream,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
VARIANTS = ("A stock", "B wrapper", "C generic_api", "D naive")
EVENT_WAIT_S = 5.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it from Debian's packages ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def config_for(variant: str, upstream_url: str, edge_url: str) -> dict[str, object]:
    model = {
        "model_name": "bench-model",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream_url + "/v1", "api_key": UPSTREAM_KEY},
    }
    litellm_settings: dict[str, object] = {"num_retries": 0}
    config: dict[str, object] = {
        "model_list": [model],
        "litellm_settings": litellm_settings,
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    if variant.startswith("C"):
        litellm_settings["callbacks"] = ["supabase_generic"]
        config["callback_settings"] = {
            "supabase_generic": {
                "callback_type": "generic_api",
                "endpoint": edge_url,
                "headers": {"Authorization": f"Bearer {SUPABASE_KEY}", "apikey": SUPABASE_KEY},
            }
        }
    if variant.startswith("D"):
        litellm_settings["callbacks"] = ["naive_logger.naive_logger"]
    return config


@dataclass
class Proxy:
    variant: str
    process: Process
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.popen.pid

    def tree(self) -> list[int]:
        """The proxy process and its descendants (uvicorn workers, the delivery process)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu_seconds(self) -> float:
        """CPU of the whole tree, so work moved into a child process is still charged here."""
        total = 0
        for pid in self.tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15])
        return total / CLK_TCK

    def peak_rss_mb(self) -> float:
        """Sum of each process's peak RSS (an upper bound for the tree's peak)."""
        total_kb = 0
        for pid in self.tree():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            except OSError:
                continue
            total_kb += next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), 0)
        return total_kb / 1024


def start_variant(variant: str, workdir: Path, upstream_url: str, edge_url: str) -> Proxy:
    port = free_port()
    vdir = workdir / variant.split()[0]
    vdir.mkdir()
    config_path = vdir / "config.yaml"
    config_path.write_text(json.dumps(config_for(variant, upstream_url, edge_url), indent=2))
    shutil.copy(ROOT / "bench" / "naive_logger.py", vdir / "naive_logger.py")
    env = base_env()
    env.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        SUPABASE_LITELLM_USAGE_URL=edge_url,
        SUPABASE_ANON_KEY=SUPABASE_KEY,
        PORT=str(port),
        HOST="127.0.0.1",
        CONFIG_FILE_PATH=str(config_path),
        USAGE_SPOOL_PATH=str(vdir / "usage-spool.db"),
        PYTHONPATH=str(vdir),
    )
    env.pop("LOG_FORMAT", None)
    if variant.startswith("B"):
        command = procfile_command()
    else:
        env.pop("CONFIG_FILE_PATH")
        command = f"exec litellm --config {config_path} --host 127.0.0.1 --port {port}"
    process = start_process(
        f"bench-{variant.split()[0]}", [command], env, port, http_ready("/health/liveliness"), timeout=120, shell=True
    )
    return Proxy(variant, process)


def warm_up(proxy: Proxy) -> None:
    for _ in range(20):
        httpx.post(
            proxy.process.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "bench-model", "messages": [{"role": "user", "content": "warm"}]},
            timeout=30,
        ).raise_for_status()


def parse_wrk(output: str) -> dict[str, float]:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": float(requests.group(1)) if requests else 0.0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def edge_count(edge_url: str) -> int:
    base = edge_url.split("/functions/")[0]
    return int(httpx.get(base + "/_events/count", timeout=5).json()["events"])


def run_round(wrk: str, proxy: Proxy, edge_url: str, duration: int, connections: int) -> dict[str, float]:
    base = edge_url.split("/functions/")[0]
    httpx.post(base + "/_control", json={"reset": True}, timeout=5)
    cpu_before = proxy.cpu_seconds()
    result = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "post.lua"),
            proxy.process.url + "/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_MASTER_KEY": MASTER_KEY},
        check=True,
    )
    cpu_used = proxy.cpu_seconds() - cpu_before
    sample = parse_wrk(result.stdout)
    time.sleep(EVENT_WAIT_S)
    sample["events_pct"] = 100.0 * edge_count(edge_url) / max(sample["requests"], 1.0)
    # CPU measured through the wait, so background delivery is charged to its variant.
    sample["cpu_s_per_1k"] = 1000.0 * (proxy.cpu_seconds() - cpu_before) / max(sample["requests"], 1.0)
    sample["cpu_during_load_s"] = cpu_used
    return sample


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    upstream = start_upstream()
    edge = start_edge()
    proxies: list[Proxy] = []
    try:
        for variant in VARIANTS:
            proxies.append(start_variant(variant, workdir, upstream.url, edge.url))
        for proxy in proxies:
            warm_up(proxy)
        time.sleep(EVENT_WAIT_S)
        for round_no in range(1, args.rounds + 1):
            for proxy in proxies:
                sample = run_round(wrk, proxy, edge.url, args.duration, args.connections)
                proxy.samples.append(sample)
                print(
                    f"round {round_no} {proxy.variant:14} {sample['rps']:8.1f} req/s  p50 {sample['p50_ms']:6.2f} ms"
                    f"  p99 {sample['p99_ms']:6.2f} ms  events {sample['events_pct']:5.1f}%",
                    flush=True,
                )
        report(proxies, args)
    finally:
        for proxy in proxies:
            proxy.process.stop()
        edge.process.stop()
        upstream.stop()
    return 0


def report(proxies: list[Proxy], args: argparse.Namespace) -> None:
    def med(proxy: Proxy, key: str) -> float:
        return statistics.median(s[key] for s in proxy.samples)

    print()
    print(
        f"{args.rounds} rounds x {args.duration} s, {args.connections} connections, wrk -t1, "
        f"{os.cpu_count()} CPUs; medians over rounds"
    )
    header = (
        f"{'variant':15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/1k':>9} {'peak RSS MB':>12} "
        f"{'events<=5s':>10} {'errors':>7}"
    )
    print(header)
    for proxy in proxies:
        print(
            f"{proxy.variant:15} {med(proxy, 'rps'):8.1f} {med(proxy, 'p50_ms'):8.2f} {med(proxy, 'p99_ms'):8.2f} "
            f"{med(proxy, 'cpu_s_per_1k'):9.3f} {proxy.peak_rss_mb():12.1f} {med(proxy, 'events_pct'):9.1f}% "
            f"{int(sum(s['errors'] for s in proxy.samples)):7d}"
        )
    base = proxies[0]
    print()
    print(f"{'ratio to A':15} {'req/s':>8} {'p50':>8} {'p99':>8} {'CPU/1k':>9}")
    for proxy in proxies[1:]:
        print(
            f"{proxy.variant:15} {med(proxy, 'rps') / med(base, 'rps'):8.3f} "
            f"{med(proxy, 'p50_ms') / med(base, 'p50_ms'):8.3f} {med(proxy, 'p99_ms') / med(base, 'p99_ms'):8.3f} "
            f"{med(proxy, 'cpu_s_per_1k') / med(base, 'cpu_s_per_1k'):9.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
