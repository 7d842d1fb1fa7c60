"""Map one LiteLLM call to one usage event: pure functions, no I/O.

The contract is the seed guide's (`id`, `model`, `usage`, `response_cost`,
`metadata.user_api_key`, `metadata.user_api_key_user_id`, `request_id`,
`status`) plus additive fields a billing table needs. Everything comes from
LiteLLM's `standard_logging_object`, which it builds the same way for every
call type; when that is missing we fall back to the raw kwargs so that a
billable call still yields a valid event.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any, Literal

EventStatus = Literal["success", "failure", "test"]

# Free-form values (request metadata, error text) are capped so one caller
# cannot make an event, or the outbox, arbitrarily large.
MAX_TEXT_CHARS = 2_000
MAX_METADATA_JSON_CHARS = 4_096
TRUNCATED_MARKER = "…[truncated]"


def new_event_id() -> str:
    """A fresh idempotency id: unique per event, kept across every retry of it."""
    return str(uuid.uuid4())


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Turn any value into something `json.dumps` accepts, without raising."""
    if _depth > 20:
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, _depth + 1) for v in value]
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            return json_safe(model_dump(), _depth + 1)
        except Exception:  # noqa: BLE001 - a broken model_dump still yields a value
            return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value), _depth + 1)
    return str(value)


def truncate_text(value: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - len(TRUNCATED_MARKER)] + TRUNCATED_MARKER


def bounded_json(value: Any, limit: int = MAX_METADATA_JSON_CHARS) -> Any:
    """JSON-safe copy of `value`, replaced by a marked preview when too large."""
    safe = json_safe(value)
    encoded = json.dumps(safe, separators=(",", ":"), ensure_ascii=False)
    if len(encoded) <= limit:
        return safe
    return {"_truncated": True, "_original_chars": len(encoded), "preview": truncate_text(encoded, limit)}


def hashed_api_key(value: Any) -> str | None:
    """LiteLLM's hashed key; a raw `sk-` key is hashed the way LiteLLM does (sha256 hex)."""
    if not value or not isinstance(value, str):
        return None
    if value.startswith("sk-"):
        return hashlib.sha256(value.encode()).hexdigest()
    return value


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        try:
            dumped = model_dump()
            return dumped if isinstance(dumped, dict) else {}
        except Exception:  # noqa: BLE001 - odd input maps to an empty section
            return {}
    return {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).timestamp()
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _response_id(response_obj: Any) -> str | None:
    response = _as_dict(response_obj)
    candidate = response.get("id") or getattr(response_obj, "id", None)
    return candidate if isinstance(candidate, str) and candidate else None


def _usage_from_response(response_obj: Any) -> dict[str, int]:
    usage = _as_dict(_as_dict(response_obj).get("usage") or getattr(response_obj, "usage", None))
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }


def build_usage_event(
    kwargs: Mapping[str, Any] | None,
    response_obj: Any,
    start_time: Any,
    end_time: Any,
    status: EventStatus,
    event_id: str,
) -> dict[str, Any]:
    """The usage event for one call. Never raises on odd input; always JSON-serialisable."""
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    slo = _as_dict(kwargs.get("standard_logging_object"))
    meta = _as_dict(slo.get("metadata"))
    litellm_params = _as_dict(kwargs.get("litellm_params"))

    if slo:
        usage = {
            "prompt_tokens": _int(slo.get("prompt_tokens")),
            "completion_tokens": _int(slo.get("completion_tokens")),
            "total_tokens": _int(slo.get("total_tokens")),
        }
    else:
        usage = _usage_from_response(response_obj)

    call_id = slo.get("litellm_call_id") or kwargs.get("litellm_call_id") or litellm_params.get("litellm_call_id")
    response_id = _response_id(response_obj) if status == "success" else None
    if response_id is None and status == "success" and slo.get("id") and slo.get("id") != call_id:
        response_id = slo.get("id")

    started = _epoch(slo.get("startTime")) or _epoch(start_time)
    ended = _epoch(slo.get("endTime")) or _epoch(end_time)
    latency_ms = round((ended - started) * 1000, 3) if started is not None and ended is not None else None

    error = _as_dict(slo.get("error_information"))
    exception = kwargs.get("exception")
    error_class = error.get("error_class") or (type(exception).__name__ if exception is not None else None)
    error_message = error.get("error_message") or slo.get("error_str") or (str(exception) if exception else None)

    team_id = meta.get("user_api_key_team_id") or meta.get("team_id")
    end_user = slo.get("end_user") or meta.get("user_api_key_end_user_id")
    event: dict[str, Any] = {
        # The seed guide's contract.
        "id": json_safe(call_id),
        # The model as LiteLLM called it, without the provider prefix (`gpt-4o`, as in the seed guide).
        "model": json_safe(kwargs.get("model") or slo.get("model")),
        "usage": usage,
        "response_cost": _float(slo.get("response_cost", kwargs.get("response_cost"))),
        "metadata": {
            "user_api_key": hashed_api_key(meta.get("user_api_key_hash")),
            "user_api_key_user_id": json_safe(meta.get("user_api_key_user_id")),
            "user_api_key_alias": json_safe(meta.get("user_api_key_alias")),
            "user_api_key_team_id": json_safe(team_id),
            "user_api_key_team_alias": json_safe(meta.get("user_api_key_team_alias") or meta.get("team_alias")),
            "user_api_key_org_id": json_safe(meta.get("user_api_key_org_id")),
            "user_api_key_end_user_id": json_safe(meta.get("user_api_key_end_user_id")),
            "spend_logs_metadata": bounded_json(meta.get("spend_logs_metadata")),
            "request_tags": bounded_json(slo.get("request_tags") or []),
        },
        "request_id": json_safe(response_id),
        "status": status,
        # Additive fields.
        "event_id": event_id,
        "trace_id": json_safe(slo.get("trace_id")),
        "model_group": json_safe(slo.get("model_group") or meta.get("model_group")),
        "model_id": json_safe(slo.get("model_id")),
        "provider": json_safe(slo.get("custom_llm_provider") or litellm_params.get("custom_llm_provider")),
        "call_type": json_safe(slo.get("call_type") or kwargs.get("call_type")),
        "stream": bool(slo.get("stream", kwargs.get("stream")) or False),
        "cache_hit": bool(slo.get("cache_hit") or False),
        "team_id": json_safe(team_id),
        "key_alias": json_safe(meta.get("user_api_key_alias")),
        "end_user": json_safe(end_user),
        "start_time": _iso(started),
        "end_time": _iso(ended),
        "latency_ms": latency_ms,
        "error_class": truncate_text(error_class, 200) if status == "failure" else None,
        "error_message": truncate_text(error_message) if status == "failure" else None,
        "error_code": json_safe(error.get("error_code")) if status == "failure" else None,
    }
    return event


def check_event(event_id: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The event `python -m app check --send-test-event` posts: the full shape, `status: "test"`."""
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    return build_usage_event(
        {"litellm_call_id": f"usage-logger-check-{event_id}", "model": "usage-logger-check"},
        None,
        moment,
        moment,
        "test",
        event_id,
    )


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the exact bytes stored and posted."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
