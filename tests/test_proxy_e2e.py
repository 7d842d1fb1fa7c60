"""End to end: the proxy started by the Procfile's command, called with the official openai client.

Stand-ins on 127.0.0.1: an OpenAI-compatible upstream with fixed token counts
and the edge function, which records what it receives. Every call must give
exactly one event with the right tokens, cost, status and headers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app.registration import CALLBACK_NAME
from tests.harness import (
    MASTER_KEY,
    SUPABASE_KEY,
    UPSTREAM_KEY,
    Edge,
    Process,
    Proxy,
    base_env,
    procfile_command,
    proxy_config,
    registered_lines,
    start_proxy,
)

pytestmark = pytest.mark.e2e

# The stand-in upstream's fixed usage, priced with LiteLLM's bundled cost map.
CHAT_TOKENS = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
GPT_4O_MINI_COST = 11 * 1.5e-07 + 7 * 6e-07
EMBEDDING_COST = 5 * 2e-08


@pytest.fixture(scope="module")
def proxy(upstream: Process, edge_server: Edge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    # The seed guide's config.yaml names the logger too; debug logs everywhere to prove redaction.
    config = proxy_config(upstream.url, callbacks=[CALLBACK_NAME])
    started = start_proxy(
        config, edge_server.url, workdir=tmp_path_factory.mktemp("proxy"), LOG_LEVEL="debug", LITELLM_LOG="DEBUG"
    )
    yield started
    started.stop()


def only_event(edge: Edge) -> dict[str, Any]:
    events = edge.wait_for(1)
    assert len(events) == 1, f"expected exactly one event, got {len(events)}: {events}"
    return events[0]


def assert_delivery_headers(event: dict[str, Any]) -> None:
    headers, body = event["headers"], event["body"]
    assert headers["authorization"] == f"Bearer {SUPABASE_KEY}"
    assert headers["apikey"] == SUPABASE_KEY
    assert headers["idempotency-key"] == body["event_id"]
    assert headers["content-type"] == "application/json"


def assert_billing_identity(body: dict[str, Any]) -> None:
    key = body["metadata"]["user_api_key"]
    assert key and MASTER_KEY not in json.dumps(body) and not key.startswith("sk-")
    assert body["metadata"]["user_api_key_user_id"]


def test_plain_chat_gives_one_event(proxy: Proxy, edge: Edge) -> None:
    response = proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    event = only_event(edge)
    body = event["body"]
    assert body["status"] == "success"
    assert body["usage"] == CHAT_TOKENS
    assert body["response_cost"] == pytest.approx(GPT_4O_MINI_COST)
    assert body["model"] == "gpt-4o-mini" and body["model_group"] == "gpt-4o-mini"
    assert body["request_id"] == response.id
    assert body["call_type"] == "acompletion" and body["stream"] is False and body["provider"] == "openai"
    assert body["latency_ms"] is not None and body["start_time"] and body["end_time"]
    assert_delivery_headers(event)
    assert_billing_identity(body)


def test_streamed_chat_with_usage_gives_one_event(proxy: Proxy, edge: Edge) -> None:
    stream = proxy.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello!"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    body = only_event(edge)["body"]
    assert body["status"] == "success" and body["stream"] is True
    assert body["usage"] == CHAT_TOKENS
    assert body["response_cost"] == pytest.approx(GPT_4O_MINI_COST)


def test_embeddings_give_one_event(proxy: Proxy, edge: Edge) -> None:
    proxy.client().embeddings.create(model="text-embedding-3-small", input="hello")
    event = only_event(edge)
    body = event["body"]
    assert body["status"] == "success" and body["call_type"] == "aembedding"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
    assert body["response_cost"] == pytest.approx(EMBEDDING_COST)
    assert_delivery_headers(event)


def test_upstream_500_gives_one_failure_event(proxy: Proxy, edge: Edge) -> None:
    with pytest.raises(openai.InternalServerError):
        proxy.client().chat.completions.create(model="broken-model", messages=[{"role": "user", "content": "Hi"}])
    event = only_event(edge)
    body = event["body"]
    assert body["status"] == "failure"
    assert body["model_group"] == "broken-model"
    assert body["response_cost"] == 0.0
    assert body["error_class"] and "stand-in upstream failure" in body["error_message"]
    assert_delivery_headers(event)
    assert_billing_identity(body)


def test_no_log_request_is_metered_anyway(proxy: Proxy, edge: Edge) -> None:
    proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}], extra_body={"no-log": True}
    )
    assert only_event(edge)["body"]["usage"] == CHAT_TOKENS


def test_disable_callbacks_header_cannot_switch_metering_off(proxy: Proxy, edge: Edge) -> None:
    names = f"{CALLBACK_NAME},supabase_usage_logger,_PROXY_SupabaseUsageLogger"
    proxy.client(default_headers={"x-litellm-disable-callbacks": names}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    assert only_event(edge)["body"]["status"] == "success"


def test_a_burst_of_calls_gives_one_event_each(proxy: Proxy, edge: Edge) -> None:
    client = proxy.client()
    ids = {
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]).id
        for i in range(20)
    }
    events = edge.wait_for(20, settle=1.0)
    assert len(events) == 20
    assert {e["body"]["request_id"] for e in events} == ids
    assert len({e["body"]["event_id"] for e in events}) == 20


def test_registered_callbacks_are_logged_before_and_after_startup(proxy: Proxy) -> None:
    lines = registered_lines(proxy.process)
    assert [line["stage"] for line in lines][:2] == ["before proxy import", "after proxy startup"]
    for line in lines:
        assert "Registered callbacks" in line["event"] and CALLBACK_NAME in line["callbacks"]
        assert line["callbacks"].count(CALLBACK_NAME) == 1


def test_status_route_needs_the_master_key(proxy: Proxy, edge: Edge) -> None:
    assert httpx.get(proxy.url + "/usage-logger/status", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer sk-wrong"}
    assert httpx.get(proxy.url + "/usage-logger/status", headers=wrong, timeout=5).status_code == 401
    status = proxy.status()
    assert status["configured"] is True and status["degraded"] is False
    assert status["counts"]["sent"] >= 1 and status["outbox_depth"] == 0
    assert set(status["counts"]) >= {"written", "sent", "retried", "dead_lettered", "skipped", "refused"}


def test_no_secret_in_any_log_line(proxy: Proxy) -> None:
    output = proxy.process.output()
    assert "usage_event_payload" in output, "debug logging was on, so the payload line must be there"
    for secret in (SUPABASE_KEY, MASTER_KEY, UPSTREAM_KEY, f"Bearer {SUPABASE_KEY}"):
        assert secret not in output
    # LiteLLM's own handler prints a few debug lines while litellm is first imported, before
    # app.server can take its loggers over; they too went through the redacting stream.
    after_import = output[output.index('"stage": "before proxy import"') :]
    assert "LiteLLM:DEBUG" not in after_import and "LiteLLM Proxy:DEBUG" not in after_import


def test_sigterm_stops_cleanly_with_exit_code_zero(
    upstream: Process, edge: Edge, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = start_proxy(proxy_config(upstream.url), edge.url, workdir=tmp_path_factory.mktemp("sigterm"))
    started.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    started.process.signal(signal.SIGTERM)
    began = time.monotonic()
    returncode = started.process.popen.wait(timeout=30)
    assert returncode == 0, started.process.output()[-3000:]
    assert time.monotonic() - began < 30
    assert len(edge.wait_for(1)) == 1
    assert "usage_sender_stopped" in started.process.output()


def test_required_logger_without_url_refuses_to_start(tmp_path: Path, upstream: Process) -> None:
    env = {**base_env(), "PORT": "1", "USAGE_LOGGER_REQUIRED": "true", "CONFIG_FILE_PATH": str(tmp_path / "c.yaml")}
    result = subprocess.run(["bash", "-c", procfile_command()], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SUPABASE_LITELLM_USAGE_URL" in result.stdout + result.stderr
