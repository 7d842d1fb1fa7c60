"""In-memory stand-in for LiteLLM's Prisma client, because Prisma's engines cannot be downloaded here.

Loaded into the real proxy process through LiteLLM's own startup-hook setting
(`LITELLM_WORKER_STARTUP_HOOKS=tests.standins.fake_prisma:install`). It then
runs the proxy's own database reconcile, `ProxyConfig.add_deployment`, every
half second, as the proxy's scheduler does against a real database. Only the
client is replaced: every table answers empty, except the model table, whose
rows come from the JSON file named by `FAKE_PRISMA_MODELS_FILE` (a list of
`{"model_id", "model_name", "litellm_params"}`), so a test adds a model at run
time by rewriting that file, as the admin UI adds a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MODEL_TABLE = "litellm_proxymodeltable"
POLL_S = 0.5


class FakeTable:
    def __init__(self, name: str) -> None:
        self.name = name

    async def find_many(self, *args: Any, **kwargs: Any) -> list[Any]:
        if self.name != MODEL_TABLE:
            return []
        path = Path(os.environ["FAKE_PRISMA_MODELS_FILE"])
        rows = json.loads(path.read_text()) if path.exists() else []
        return [
            SimpleNamespace(
                model_id=row["model_id"],
                model_name=row["model_name"],
                litellm_params=dict(row["litellm_params"]),
                model_info={"id": row["model_id"], "db_model": True},
                blocked=False,
                created_at=None,
                updated_at=None,
                created_by="admin",
                updated_by="admin",
            )
            for row in rows
        ]

    async def find_first(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def find_unique(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def count(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def __getattr__(self, _name: str) -> Any:
        async def anything(*args: Any, **kwargs: Any) -> None:
            return None

        return anything


class FakeDb:
    def __getattr__(self, name: str) -> FakeTable:
        return FakeTable(name)


class FakePrismaClient:
    def __init__(self) -> None:
        self.db = FakeDb()

    async def get_generic_data(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, _name: str) -> Any:
        async def anything(*args: Any, **kwargs: Any) -> None:
            return None

        return anything


async def _reconcile_forever() -> None:
    from litellm.proxy import proxy_server

    client = FakePrismaClient()
    while True:
        await asyncio.sleep(POLL_S)
        with contextlib.suppress(Exception):
            await proxy_server.proxy_config.add_deployment(
                prisma_client=client, proxy_logging_obj=proxy_server.proxy_logging_obj
            )


_tasks: set[asyncio.Task[None]] = set()


def install() -> None:
    task = asyncio.get_running_loop().create_task(_reconcile_forever())
    _tasks.add(task)
