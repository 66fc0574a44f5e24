"""``blazz-sessiond --instance N [--config PATH] [--log-format text|json]``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from blazzctl import paths
from blazzctl.errors import BlazzError
from blazzctl.settings import load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blazz-sessiond",
                                     description="A blazz session daemon (normally run by blazz-session@N.service).")
    parser.add_argument("--instance", type=int, required=True, help="instance number (1..N) on this host")
    parser.add_argument("--config", "-c", metavar="PATH", help="configuration file")
    parser.add_argument("--log-format", choices=("text", "json"), help="override logging.format")
    args = parser.parse_args(argv)
    if args.instance < 1:
        parser.error("--instance must be 1 or more")
    return args


def run(argv: list[str] | None = None) -> None:
    # A stop request that arrives while we are still importing and connecting is kept and
    # honoured once the loop runs (exit 0 after a drain), instead of killing us mid-start.
    early: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, _frame: early.append(sig))
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
    except BlazzError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(error.exit_code) from None
    from daemons.session import logs
    from daemons.session.daemon import SessionDaemon

    fmt = args.log_format or settings.logging.format
    logs.setup(level=settings.logging.level, fmt=fmt, daemon=f"session-{args.instance}")
    state_dir = paths.daemon_state_dir(settings.daemon.state_dir, args.instance)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        daemon = SessionDaemon(settings, instance=args.instance, state_dir=state_dir, host=settings.daemon.host,
                               early_signals=early)
        logs.setup(level=settings.logging.level, fmt=fmt, daemon=daemon.name)
        code = asyncio.run(daemon.run())
    except BlazzError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(error.exit_code) from None
    raise SystemExit(code)


if __name__ == "__main__":
    run()
