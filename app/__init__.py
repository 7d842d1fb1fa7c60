"""LiteLLM proxy entrypoint that always meters every call to a Supabase usage table.

Modules, one responsibility each:
- settings:      environment variables, validated once
- logs:          structlog setup and secret redaction for every log line
- bootstrap:     settings, then logging, then redaction: how every entry point starts
- payload:       pure mapping from a LiteLLM call to a usage event
- outbox:        the durable SQLite outbox (and its in-memory fallback)
- delivery:      the sender: retries, backoff, shared outage pause, dead letters
- delivery_process: delivery in its own process, its sender lock, the parent's handle
- usage_logger:  the LiteLLM callback that ties payload, outbox and sender together
- registration:  exactly-once registration and the guard that keeps it
- server:        the ASGI app uvicorn serves (proxy + lifespan + status route)
- check:         `python -m app check`
"""
