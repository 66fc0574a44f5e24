"""Running blazz-api: uvicorn with ``api.workers`` processes on ``api.host:api.port``.

SIGTERM (systemd's stop) makes uvicorn stop accepting, let in-flight requests finish (long
polls included, at most 30 s), then exit; ``GRACE`` bounds that.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from blazzctl.errors import BlazzError, ConfigError

GRACE = 35  # seconds in-flight requests get after SIGTERM: a long poll lasts at most 30
# Seconds an idle keep-alive connection stays open: longer than a reverse proxy keeps its idle
# upstream connections (nginx: 60 s), so the proxy, not blazz-api, closes them. With uvicorn's
# 5 s, a client reusing a connection just as the server closes it gets no answer at all.
KEEP_ALIVE = 75


def check_bind(host: str, *, allow_remote: bool, source: str = "api") -> None:
    """Only a loopback address unless ``api.allow_remote``: the API speaks plain HTTP."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ConfigError([(source, "api.host", f"{host!r} is not an IP address")]) from None
    if not loopback and not allow_remote:
        raise ConfigError([(source, "api.host", f"{host} is not a loopback address, and api.allow_remote is "
                                                "false")],
                          hint="Keep 127.0.0.1 behind a TLS reverse proxy (docs/operations.md), or set "
                               "api.allow_remote: true.")


def serve(settings, *, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Run the API in the foreground until SIGTERM or SIGINT."""
    import uvicorn

    from blazzctl.settings import CONFIG_ENV

    host = host or settings.api.host
    check_bind(host, allow_remote=settings.api.allow_remote, source=settings.source or "defaults")
    if settings.source:  # the worker processes load the same file
        os.environ[CONFIG_ENV] = os.path.abspath(settings.source)
    config = uvicorn.Config("blazzctl.api.app:from_env", factory=True, host=host, port=port or settings.api.port,
                            workers=workers or settings.api.workers, timeout_graceful_shutdown=GRACE,
                            timeout_keep_alive=KEEP_ALIVE, access_log=settings.api.access_log,
                            log_level=settings.logging.level, server_header=False, proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1,::1")
    from blazzctl.api import workers as worker_processes

    worker_processes.ensure_free(config.host, config.port)  # one clear error, with one worker or many
    if config.workers == 1:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:  # uvicorn logged why
            raise SystemExit(3)
        return
    worker_processes.run(config)


def main(argv: list[str] | None = None) -> None:
    """The ``blazz-api`` console script."""
    parser = argparse.ArgumentParser(prog="blazz-api", description="Serve the blazz HTTP API (docs/api.md).")
    parser.add_argument("-c", "--config", metavar="PATH", help="Configuration file (default: blazzctl's lookup).")
    parser.add_argument("--host", help="Listen address (default: api.host).")
    parser.add_argument("--port", type=int, help="Port (default: api.port).")
    parser.add_argument("--workers", type=int, help="Worker processes (default: api.workers).")
    args = parser.parse_args(argv)
    try:
        from blazzctl.settings import load_settings

        serve(load_settings(args.config), host=args.host, port=args.port, workers=args.workers)
    except BlazzError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(error.exit_code) from None


def run() -> None:
    main()
