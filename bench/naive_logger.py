"""Variant D of the benchmark: the seed guide's logger shape.

Awaits one POST per event inside the callback, with a new HTTP client each
time, no retries and no outbox: the cost this project is meant to avoid.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from litellm.integrations.custom_logger import CustomLogger


class NaiveSupabaseLogger(CustomLogger):
    async def _send(self, kwargs: Any, status: str) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        payload = {
            "id": kwargs.get("litellm_call_id"),
            "model": kwargs.get("model"),
            "usage": {k: slo.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            "response_cost": slo.get("response_cost", 0),
            "status": status,
        }
        key = os.environ["SUPABASE_ANON_KEY"]
        async with httpx.AsyncClient(timeout=10) as client:
            await client.post(
                os.environ["SUPABASE_LITELLM_USAGE_URL"],
                json=payload,
                headers={"Authorization": f"Bearer {key}", "apikey": key},
            )

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self._send(kwargs, "success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        await self._send(kwargs, "failure")


naive_logger = NaiveSupabaseLogger()
