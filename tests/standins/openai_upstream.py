"""A stand-in OpenAI-compatible upstream, on 127.0.0.1, with fixed token counts.

Chat (plain and streamed, with `stream_options.include_usage`) and embeddings.
A model whose name contains "fail" answers 500, so failure metering can be tested.

    python -m tests.standins.openai_upstream --port 18080
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from tests.standins._http import JsonHandler, serve

CHAT_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
EMBEDDING_USAGE = {"prompt_tokens": 5, "total_tokens": 5}
DELAY_S = 0.0


class UpstreamHandler(JsonHandler):
    def do_GET(self) -> None:
        self.send_json(200, {"object": "list", "data": []})

    def do_POST(self) -> None:
        body = self.read_json() or {}
        model = str(body.get("model", ""))
        if DELAY_S:
            time.sleep(DELAY_S)
        if "fail" in model:
            self.send_json(500, {"error": {"message": "stand-in upstream failure", "type": "server_error"}})
        elif self.path.endswith("/embeddings"):
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)]
            self.send_json(200, {"object": "list", "data": data, "model": model, "usage": EMBEDDING_USAGE})
        elif self.path.endswith("/chat/completions"):
            if body.get("stream"):
                self._stream_chat(model, bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self.send_json(200, self._chat(model))
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    @staticmethod
    def _chat(model: str) -> dict[str, object]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the stand-in."},
                    "finish_reason": "stop",
                }
            ],
            "usage": CHAT_USAGE,
        }

    def _stream_chat(self, model: str, include_usage: bool) -> None:
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        pieces = ["Hello", " from", " the", " stand-in."]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            self._sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            self._sse({**base, "choices": [], "usage": CHAT_USAGE})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _sse(self, payload: dict[str, object]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


def main() -> None:
    global DELAY_S
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    DELAY_S = args.delay
    serve(UpstreamHandler, args.port, "openai upstream stand-in listening on http://127.0.0.1:{port}")


if __name__ == "__main__":
    main()
