"""The ASGI app uvicorn serves: LiteLLM's proxy with the usage logger guaranteed.

uvicorn imports this module by name (`app.server:app`) in every worker, so
each worker runs the same sequence: logging, settings, the one logger in
`litellm.callbacks`, and only then the proxy import. The proxy's own lifespan
is wrapped, not replaced: after it has loaded config.yaml and the database
settings, ours checks the registration again, starts the sender and, on
shutdown, flushes before the proxy tears down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.bootstrap import load_and_configure
from app.logs import adopt_stdlib_loggers, get_logger, redactor
from app.registration import RegistrationGuard, get_usage_logger, log_registered, register

serve_settings, usage_settings = load_and_configure()
usage_logger = get_usage_logger(usage_settings)
register(usage_logger, stage="before proxy import")

from fastapi import FastAPI, Request  # noqa: E402 - the logger must be registered before the proxy loads
from fastapi.responses import JSONResponse  # noqa: E402
from litellm.proxy import proxy_server  # noqa: E402
from starlette.routing import Route  # noqa: E402

adopt_stdlib_loggers()  # LiteLLM attached its own handlers while importing
log = get_logger("app.server")
guard = RegistrationGuard(usage_logger)
guard.hook_db_config_sync()

app: FastAPI = proxy_server.app
STATUS_PATH = "/usage-logger/status"
WATCHDOG_EVERY_S = 1.0

_proxy_lifespan = app.router.lifespan_context


@asynccontextmanager
async def _lifespan(asgi_app: Any) -> AsyncIterator[Any]:
    async with _proxy_lifespan(asgi_app) as state:
        adopt_stdlib_loggers()  # the proxy's startup re-attaches LiteLLM's handlers when LITELLM_LOG is set
        master_key = getattr(proxy_server, "master_key", None)
        if isinstance(master_key, str):
            redactor.add([master_key])  # config.yaml can set one the environment did not
        guard.check("after proxy startup loaded config.yaml and database settings")
        log_registered("after proxy startup")
        await usage_logger.start()
        watchdog = asyncio.get_running_loop().create_task(_watchdog(), name="usage-watchdog")
        try:
            yield state
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await usage_logger.shutdown()


async def _watchdog() -> None:
    """Every second: the logger still registered, and someone still sending the outbox."""
    while True:
        await asyncio.sleep(WATCHDOG_EVERY_S)
        try:
            guard.check("periodic check")
            usage_logger.ensure_delivery()
        except Exception as exc:  # noqa: BLE001 - the watchdog must outlive any one failure
            log.error("usage_watchdog_error", error=f"{type(exc).__name__}: {exc}")


app.router.lifespan_context = _lifespan


def _authorized(request: Request) -> bool:
    master_key = getattr(proxy_server, "master_key", None)
    if not master_key:
        return True  # an open proxy (no master key) exposes nothing secret here either
    supplied = request.headers.get("authorization", "")
    token = supplied[7:] if supplied.lower().startswith("bearer ") else request.headers.get("x-litellm-api-key", "")
    return hmac.compare_digest(token.encode(), str(master_key).encode())


async def usage_logger_status(request: Request) -> JSONResponse:
    if not _authorized(request):
        return JSONResponse({"error": "the master key is required"}, status_code=401)
    return JSONResponse(await usage_logger.status())


# First in the route table, ahead of LiteLLM's catch-all pass-through routes.
app.router.routes.insert(0, Route(STATUS_PATH, usage_logger_status, methods=["GET"]))
