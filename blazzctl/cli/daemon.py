"""`blazzctl daemon`: the session daemons of the fleet."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="List session daemons; run them in the foreground.")


@app.command("list")
def list_(config: ConfigOption = None, json: JsonOption = False,
          all_: bool = typer.Option(False, "--all", "-a", help="Include stopped daemons.")) -> None:
    """List session daemons with their heartbeat age, accounts and memory.

    Example: blazzctl daemon list
    """
    from blazzctl import views
    from blazzctl.services import daemons

    st = state(config)
    with st.db.session() as session:
        rows = [views.daemon(v) for v in daemons.list_daemons(
            session, heartbeat_interval=st.settings.daemon.heartbeat_interval, include_stopped=all_)]
    if json:
        output.emit_json(rows)
        return
    output.table(["NAME", "HOST", "INST", "PID", "STATUS", "HEARTBEAT", "ACCOUNTS", "RSS", "VERSION"],
                 ([r["name"], r["host"], r["instance"], r["pid"], r["status"] + ("" if r["live"] or r["status"] == "stopped" else " (dead)"),
                   f"{r['heartbeat_age_s']:.1f}s ago" if r["heartbeat_age_s"] is not None else None,
                   r["accounts_owned"], _mb(r["rss_bytes"]), r["version"]] for r in rows),
                 empty="no session daemons: blazzctl daemon run (or systemctl start blazz.target)")


@app.command("run")
def run(instances: int = typer.Option(None, "--instances", "-n", min=1, max=64,
                                      help="How many daemons (default: daemon.instances)."),
        config: ConfigOption = None) -> None:
    """Run session daemons in the foreground (no systemd needed); Ctrl-C drains them.

    Example: blazzctl daemon run --instances 2
    """
    from daemons.supervisor import run_foreground

    st = state(config)
    count = instances or st.settings.daemon.instances
    raise typer.Exit(run_foreground(count, st.config_path))


def _mb(value: int | None) -> str | None:
    return None if value is None else f"{value / 1048576:.0f} MB"
