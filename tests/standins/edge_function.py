"""A stand-in for the Supabase edge function, on 127.0.0.1.

Records every POST (headers and JSON body) and answers as told: by flags at
start, or at run time through `POST /_control`. `GET /_events` returns what it
accepted and every attempt. `--print` prints each accepted event (`make demo`).

    python -m tests.standins.edge_function --port 54321 [--fail-first 3 --fail-status 503]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from tests.standins._http import JsonHandler, serve

STATE: dict[str, Any] = {
    "events": [],  # accepted posts: {"headers": {...}, "body": {...}}
    "attempts": [],  # every post: {"event_id", "status", "at"}
    "fail_first": 0,
    "fail_status": 503,
    "status": 200,
    "delay_s": 0.0,
    "retry_after": None,
    "print": False,
    "hold": False,  # when true, posts wait (unanswered) until it is set false again
}
LOCK = threading.Lock()
RELEASED = threading.Event()
RELEASED.set()
KEPT_HEADERS = ("authorization", "apikey", "idempotency-key", "content-type")


class EdgeHandler(JsonHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/_events/count"):
            with LOCK:
                self.send_json(200, {"events": len(STATE["events"]), "attempts": len(STATE["attempts"])})
        elif self.path.startswith("/_events"):
            with LOCK:
                self.send_json(200, {"events": STATE["events"], "attempts": STATE["attempts"]})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.read_json()
        if self.path.startswith("/_control"):
            with LOCK:
                STATE.update(body or {})
                if (body or {}).get("reset"):
                    STATE["events"], STATE["attempts"] = [], []
                if STATE["hold"]:
                    RELEASED.clear()
                else:
                    RELEASED.set()
            self.send_json(200, {"ok": True})
            return
        with LOCK:
            delay = float(STATE["delay_s"])
        if delay:
            time.sleep(delay)
        RELEASED.wait()
        with LOCK:
            if STATE["fail_first"] > 0:
                STATE["fail_first"] -= 1
                status = int(STATE["fail_status"])
            else:
                status = int(STATE["status"])
            # Batching loggers (LiteLLM's generic_api) post a list; count each item as an event.
            items = body if isinstance(body, list) else [body]
            event_id = (items[0] or {}).get("event_id") if items and isinstance(items[0], dict) else None
            STATE["attempts"].append({"event_id": event_id, "status": status, "at": time.time()})
            if 200 <= status < 300:
                headers = {k: v for k, v in self.headers.items() if k.lower() in KEPT_HEADERS}
                for item in items:
                    STATE["events"].append({"headers": {k.lower(): v for k, v in headers.items()}, "body": item})
                    if STATE["print"]:
                        print(json.dumps(item, indent=2), flush=True)
            retry_after = STATE["retry_after"]
        extra = {"retry-after": str(retry_after)} if retry_after is not None and status >= 400 else None
        if 200 <= status < 300:
            self.send_json(status, {"ok": True, "event_id": event_id}, extra)
        else:
            self.send_json(status, {"error": f"stand-in answered {status}"}, extra)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args()
    STATE.update(
        fail_first=args.fail_first,
        fail_status=args.fail_status,
        status=args.status,
        delay_s=args.delay,
        print=args.print,
    )
    serve(EdgeHandler, args.port, "edge function stand-in listening on http://127.0.0.1:{port}")


if __name__ == "__main__":
    main()
