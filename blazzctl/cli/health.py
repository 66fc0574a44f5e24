"""`blazzctl health`: monitoring-plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

import time

import typer
from typer.core import TyperCommand

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, keep_running, state


class HealthCommand(TyperCommand):
    """Usage errors of `health` exit 3 (UNKNOWN): monitoring reads nothing else from it."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except Exception as error:
            if hasattr(error, "exit_code"):
                error.exit_code = 3
            raise


def health(config: ConfigOption = None, json: JsonOption = False,
           wait: float = typer.Option(0, "--wait", min=0, metavar="S",
                                      help="Poll until OK or S seconds have passed."),
           gate: bool = typer.Option(False, "--gate",
                                     help="Only the checks a restart can break (database, daemons, heartbeats, "
                                          "unowned accounts): what deploy.sh waits for.")) -> None:
    """Check the database, the daemons and account ownership; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    Example: blazzctl health --wait 120

    Example: blazzctl health --gate --wait 120
    """
    from blazzctl.services import health as checks

    st = state(config)
    deadline = time.monotonic() + wait
    if wait:
        keep_running()
    while True:
        report = checks.evaluate(lambda: st.settings)
        if gate:
            report = report.gate()
        if report.state == checks.State.OK or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    if json:
        output.emit_json(report.as_dict())
    else:
        output.say_state(report.state.name)
        output.table(["CHECK", "STATE", "DETAIL"], ([c.name, c.state.name, c.detail] for c in report.checks))
    raise typer.Exit(int(report.state))
