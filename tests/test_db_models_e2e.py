"""End to end: a model added at run time through the database path is metered too.

Prisma's engines cannot be downloaded on this machine, so no real database
can run here. The proxy process is the real one, started by the Procfile
command; only LiteLLM's Prisma client is replaced, by the in-memory stand-in
in `tests/standins/fake_prisma.py`, loaded with LiteLLM's own startup-hook
setting. The model reaches the router through LiteLLM's own reconcile,
`ProxyConfig.add_deployment`, exactly as a model saved in the admin UI does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.harness import UPSTREAM_KEY, Edge, Process, proxy_config, start_proxy

pytestmark = pytest.mark.e2e


def test_model_added_through_the_db_reconcile_is_metered(upstream: Process, edge: Edge, tmp_path: Path) -> None:
    models_file = tmp_path / "db-models.json"
    proxy = start_proxy(
        proxy_config(upstream.url),
        edge.url,
        workdir=tmp_path,
        LITELLM_WORKER_STARTUP_HOOKS="tests.standins.fake_prisma:install",
        FAKE_PRISMA_MODELS_FILE=str(models_file),
    )
    try:
        client = proxy.client()
        assert "db-added-model" not in {m.id for m in client.models.list()}
        models_file.write_text(
            json.dumps(
                [
                    {
                        "model_id": "db-model-1",
                        "model_name": "db-added-model",
                        "litellm_params": {
                            "model": "openai/gpt-4o-mini",
                            "api_base": upstream.url + "/v1",
                            "api_key": UPSTREAM_KEY,
                        },
                    }
                ]
            )
        )
        deadline = time.monotonic() + 30
        while "db-added-model" not in {m.id for m in client.models.list()}:
            assert time.monotonic() < deadline, "the DB reconcile never added the model"
            time.sleep(0.3)
        for _ in range(2):
            client.chat.completions.create(model="db-added-model", messages=[{"role": "user", "content": "hi"}])
        events = edge.wait_for(2, settle=1.5)
        assert len(events) == 2
        assert {e["body"]["model_group"] for e in events} == {"db-added-model"}
        assert all(e["body"]["usage"]["total_tokens"] == 18 for e in events)
        assert proxy.status()["counts"]["restorations"] == 0
    finally:
        proxy.stop()
