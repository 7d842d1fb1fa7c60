"""`python -m app`: serve the proxy; `python -m app check`: verify the setup.

Settings are validated here, before uvicorn starts, so a missing required
variable stops the container with one clear line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from app.bootstrap import load_and_configure
from app.logs import get_logger
from app.settings import SettingsError

# Uvicorn waits this long for open requests after SIGTERM; our outbox flush comes after.
GRACEFUL_SHUTDOWN_S = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the proxy (the default)")
    for target in (parser, serve):
        target.add_argument("--host", help="listen address (default: $HOST or 0.0.0.0)")
        target.add_argument("--port", type=int, help="listen port (default: $PORT or 4000)")
        target.add_argument("--num_workers", "--workers", type=int, dest="num_workers", help="uvicorn workers")
        target.add_argument("--config", help="LiteLLM config.yaml (default: $CONFIG_FILE_PATH)")
    sub.add_parser("deliver", help="the delivery process `serve` starts (not for direct use)")
    check = sub.add_parser("check", help="print the settings and callbacks startup would use, then exit")
    check.add_argument("--config", help="LiteLLM config.yaml (default: $CONFIG_FILE_PATH)")
    check.add_argument("--send-test-event", action="store_true", help='post one event with status "test"')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Flags win over the environment; the proxy and the workers read the environment.
    for flag, env in (
        ("host", "HOST"),
        ("port", "PORT"),
        ("num_workers", "NUM_WORKERS"),
        ("config", "CONFIG_FILE_PATH"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[env] = str(value)
    if args.command == "check":
        from app.check import run_check

        return run_check(send_test_event=args.send_test_event)
    if args.command == "deliver":
        from app.delivery_process import run_delivery_process

        return run_delivery_process()
    return serve()


def serve() -> int:
    try:
        serve_settings, usage_settings = load_and_configure()
    except SettingsError:
        return 2
    log = get_logger("app")

    import uvicorn

    from app.delivery_process import DeliveryProcess

    delivery = DeliveryProcess(usage_settings) if not usage_settings.missing_for_delivery() else None
    if delivery is not None:
        delivery.start()
    log.info(
        "starting_proxy",
        host=serve_settings.host,
        port=serve_settings.port,
        workers=serve_settings.num_workers,
        config_file_path=str(serve_settings.config_file_path) if serve_settings.config_file_path else None,
    )
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default
    # handler that would end a clean shutdown with "killed by SIGTERM" instead of 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        # By import string, so that every worker imports app.server and registers its own logger.
        uvicorn.run(
            "app.server:app",
            host=serve_settings.host,
            port=serve_settings.port,
            workers=serve_settings.num_workers,
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    finally:
        # The workers have written their last events; the delivery process gets the flush budget.
        if delivery is not None:
            delivery.stop(usage_settings.usage_shutdown_flush_s)
    log.info("proxy_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
