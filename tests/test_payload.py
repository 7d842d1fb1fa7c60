"""Payload mapping: the seed contract plus additive fields, from LiteLLM's standard logging object."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from typing import Any

from pydantic import BaseModel

from app.payload import (
    MAX_METADATA_JSON_CHARS,
    TRUNCATED_MARKER,
    build_usage_event,
    check_event,
    encode_event,
    hashed_api_key,
    json_safe,
)

SEED_KEYS = {"id", "model", "usage", "response_cost", "metadata", "request_id", "status"}


def slo(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "litellm_call_id": "call-123",
        "trace_id": "trace-1",
        "call_type": "acompletion",
        "stream": False,
        "response_cost": 0.0015,
        "status": "success",
        "custom_llm_provider": "openai",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "total_tokens": 30,
        "startTime": 1_700_000_000.0,
        "endTime": 1_700_000_001.25,
        "model": "gpt-4o",
        "model_id": "dep-1",
        "model_group": "gpt-4o-public",
        "cache_hit": None,
        "end_user": "customer-7",
        "request_tags": ["tier:gold"],
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": "acme-prod",
            "user_api_key_team_id": "team-9",
            "user_api_key_user_id": "user-123",
            "user_api_key_end_user_id": None,
            "spend_logs_metadata": {"invoice": "INV-1"},
        },
        "error_information": None,
    }
    base.update(overrides)
    return base


def test_seed_contract_fields_and_values() -> None:
    event = build_usage_event(
        {"standard_logging_object": slo(), "model": "gpt-4o"}, {"id": "chatcmpl-abc"}, None, None, "success", "ev-1"
    )
    assert event.keys() >= SEED_KEYS
    assert event["id"] == "call-123"
    assert event["model"] == "gpt-4o"
    assert event["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    assert event["response_cost"] == 0.0015
    assert event["metadata"]["user_api_key"].startswith("88dc28d0")
    assert event["metadata"]["user_api_key_user_id"] == "user-123"
    assert event["request_id"] == "chatcmpl-abc"
    assert event["status"] == "success"


def test_additive_billing_fields() -> None:
    event = build_usage_event({"standard_logging_object": slo()}, None, None, None, "success", "ev-1")
    assert event["event_id"] == "ev-1"
    assert event["model_group"] == "gpt-4o-public"
    assert event["provider"] == "openai"
    assert event["call_type"] == "acompletion"
    assert event["stream"] is False and event["cache_hit"] is False
    assert event["team_id"] == "team-9" and event["key_alias"] == "acme-prod" and event["end_user"] == "customer-7"
    assert event["start_time"] == "2023-11-14T22:13:20Z"
    assert event["latency_ms"] == 1250.0
    assert event["metadata"]["spend_logs_metadata"] == {"invoice": "INV-1"}
    assert event["error_class"] is None and event["error_message"] is None


def test_failure_carries_error_class_and_message_and_no_request_id() -> None:
    failure = slo(
        status="failure",
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        response_cost=0,
        error_information={"error_class": "InternalServerError", "error_message": "upstream 500", "error_code": "500"},
    )
    event = build_usage_event({"standard_logging_object": failure}, None, None, None, "failure", "ev-2")
    assert event["status"] == "failure"
    assert (event["error_class"], event["error_message"], event["error_code"]) == (
        "InternalServerError",
        "upstream 500",
        "500",
    )
    assert event["request_id"] is None


def test_raw_virtual_key_is_hashed_never_sent() -> None:
    raw = "sk-live-1234567890"
    meta = {**slo()["metadata"], "user_api_key_hash": raw}
    event = build_usage_event({"standard_logging_object": slo(metadata=meta)}, None, None, None, "success", "e")
    assert event["metadata"]["user_api_key"] == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in encode_event(event).decode()
    assert hashed_api_key(None) is None


def test_missing_standard_logging_object_still_gives_a_valid_event() -> None:
    response = {"id": "chatcmpl-x", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    event = build_usage_event(
        {"model": "gpt-4o", "litellm_call_id": "c-1", "response_cost": decimal.Decimal("0.25")},
        response,
        start,
        start + dt.timedelta(milliseconds=500),
        "success",
        "e",
    )
    assert event["id"] == "c-1" and event["model"] == "gpt-4o" and event["request_id"] == "chatcmpl-x"
    assert event["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert event["response_cost"] == 0.25
    assert event["latency_ms"] == 500.0
    json.loads(encode_event(event))


def test_garbage_input_never_raises() -> None:
    for kwargs in (None, {}, {"standard_logging_object": "nonsense"}, {"standard_logging_object": {"metadata": 5}}):
        event = build_usage_event(kwargs, object(), "not a time", None, "success", "e")  # type: ignore[arg-type]
        json.loads(encode_event(event))


class Custom(BaseModel):
    amount: decimal.Decimal
    when: dt.datetime


def test_values_that_json_cannot_take_are_converted() -> None:
    meta = {
        **slo()["metadata"],
        "spend_logs_metadata": {
            "price": decimal.Decimal("1.50"),
            "at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
            "blob": b"\x00\x01",
            "model": Custom(amount=decimal.Decimal("2"), when=dt.datetime(2024, 1, 1)),
            "tags": {"a"},
            "nan": float("nan"),
        },
    }
    event = build_usage_event({"standard_logging_object": slo(metadata=meta)}, None, None, None, "success", "e")
    decoded = json.loads(encode_event(event))["metadata"]["spend_logs_metadata"]
    assert decoded["price"] == 1.5
    assert decoded["at"] == "2024-05-01T12:00:00+00:00"
    assert decoded["blob"] == "AAE="
    assert decoded["model"]["amount"] == 2.0
    assert decoded["tags"] == ["a"] and decoded["nan"] is None


def test_oversized_metadata_is_truncated_with_a_marker() -> None:
    meta = {**slo()["metadata"], "spend_logs_metadata": {"blob": "x" * 50_000}}
    event = build_usage_event({"standard_logging_object": slo(metadata=meta)}, None, None, None, "success", "e")
    truncated = event["metadata"]["spend_logs_metadata"]
    assert truncated["_truncated"] is True and truncated["_original_chars"] > 50_000
    assert truncated["preview"].endswith(TRUNCATED_MARKER)
    assert len(truncated["preview"]) <= MAX_METADATA_JSON_CHARS
    assert len(encode_event(event)) < 3 * MAX_METADATA_JSON_CHARS


def test_huge_error_message_is_truncated() -> None:
    failure = slo(error_information={"error_class": "X", "error_message": "e" * 100_000})
    event = build_usage_event({"standard_logging_object": failure}, None, None, None, "failure", "e")
    assert len(event["error_message"]) <= 2_000 and event["error_message"].endswith(TRUNCATED_MARKER)


def test_check_event_has_the_full_shape_and_test_status() -> None:
    event = check_event("ev-test")
    assert event.keys() >= SEED_KEYS and event["status"] == "test" and event["event_id"] == "ev-test"


def test_json_safe_depth_and_odd_objects() -> None:
    nested: dict[str, Any] = {}
    cursor = nested
    for _ in range(50):
        cursor["n"] = {}
        cursor = cursor["n"]
    json.dumps(json_safe(nested))
    assert json_safe(object()).startswith("<object")
