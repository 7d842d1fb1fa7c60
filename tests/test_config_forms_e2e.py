"""End to end: whatever config.yaml says about callbacks, one event per call.

The seed guide's config named the logger in `litellm_settings.callbacks`; as
a string LiteLLM replaces the whole callback list with it, and a string naming
another callback would push ours out. Each form is started as users start it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.registration import CALLBACK_NAME
from tests.harness import Edge, Process, proxy_config, registered_lines, start_proxy

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(
    "callbacks",
    [None, CALLBACK_NAME, [CALLBACK_NAME], "other_callbacks.other_logger", ["other_callbacks.other_logger"]],
    ids=["absent", "ours-as-string", "ours-as-list", "other-as-string", "other-as-list"],
)
def test_each_config_form_meters_every_call_once(
    callbacks: object, upstream: Process, edge: Edge, tmp_path: Path
) -> None:
    shutil.copy(FIXTURES / "other_callbacks.py", tmp_path / "other_callbacks.py")
    proxy = start_proxy(proxy_config(upstream.url, callbacks=callbacks), edge.url, workdir=tmp_path)
    try:
        client = proxy.client()
        for i in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}])
        events = edge.wait_for(3, settle=1.0)
        assert len(events) == 3
        assert len({e["body"]["event_id"] for e in events}) == 3
        final = registered_lines(proxy.process)[-1]
        assert final["stage"] == "after proxy startup"
        assert final["callbacks"][0] == CALLBACK_NAME and final["callbacks"].count(CALLBACK_NAME) == 1
        if callbacks is not None and "other" in str(callbacks):
            assert "OtherLogger" in final["callbacks"], "the team's own callback keeps working"
    finally:
        assert proxy.stop() == 0
