"""`blazzctl daemon`: the session daemons of the fleet."""

from __future__ import annotations

from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, keep_running, state

app = typer.Typer(no_args_is_help=True, help="List session daemons; run them in the foreground; restart them.")


@app.command("list")
def list_(config: ConfigOption = None, json: JsonOption = False,
          all_: bool = typer.Option(False, "--all", "-a", help="Include stopped daemons.")) -> None:
    """List session daemons with their heartbeat age, accounts and memory (PSS of the process
    tree: pages Chromium's processes share are counted once; --json also gives summed RSS).

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
    output.table(["NAME", "HOST", "INST", "PID", "STATUS", "HEARTBEAT", "ACCOUNTS", "PSS", "VERSION"],
                 ([r["name"], r["host"], r["instance"], r["pid"], r["status"] + ("" if r["live"] or r["status"] == "stopped" else " (dead)"),
                   f"{r['heartbeat_age_s']:.1f}s ago" if r["heartbeat_age_s"] is not None else None,
                   r["accounts_owned"], _mb(r["pss_bytes"]), r["version"]] for r in rows),
                 empty="no session daemons: blazzctl daemon run (or systemctl start blazz.target)")


@app.command("forget")
def forget(names: Optional[list[str]] = typer.Argument(None, metavar="[NAME]...", show_default=False,
                                                       help="Daemon names (host:instance)."),
           host: Optional[str] = typer.Option(None, "--host", metavar="HOST", show_default=False,
                                              help="Every daemon of this host (a decommissioned one)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Remove the rows of daemons that no longer run, so list and health stop showing them.

    A live daemon is refused (exit 4): stop it first. Accounts it held are claimed by the other
    daemons once its leases expire, whether or not it is forgotten.

    Example: blazzctl daemon forget --host old-host
    """
    from blazzctl.services import daemons

    st = state(config)
    with st.db.session() as session:
        forgotten = daemons.forget(session, names=names or (), host=host,
                                   heartbeat_interval=st.settings.daemon.heartbeat_interval)
    if json:
        output.emit_json({"forgotten": forgotten})
    else:
        output.say(f"forgot {', '.join(forgotten)}")


@app.command("run")
def run(instances: int = typer.Option(None, "--instances", "-n", min=1, max=64,
                                      help="How many daemons (default: daemon.instances)."),
        config: ConfigOption = None,
        json: bool = typer.Option(False, "--json", help="The daemons log JSON lines (logging.format json) on "
                                                        "stderr; errors as JSON on stdout.")) -> None:
    """Run session daemons in the foreground (no systemd needed); Ctrl-C drains them.

    An instance of this host that already runs (under another `daemon run`, or systemd) is
    left alone, said once; the others run.

    Example: blazzctl daemon run --instances 2
    """
    import os

    from daemons.supervisor import run_foreground, running_elsewhere

    if json:  # the daemons read it as they read the configuration (an environment override)
        os.environ["BLAZZ_LOGGING_FORMAT"] = "json"
    keep_running()
    st = state(config)
    count = instances or st.settings.daemon.instances
    raise typer.Exit(run_foreground(count, st.config_path, running=running_elsewhere(st.settings, count)))


@app.command("restart")
def restart(rolling: bool = typer.Option(False, "--rolling",
                                         help="One instance at a time, each gated before the next (else all at once)."),
            instances: Optional[int] = typer.Option(None, "--instances", "-n", min=1, max=64, metavar="N",
                                                    show_default=False,
                                                    help="Restart blazz-session@1..N (default: daemon.instances)."),
            only: Optional[list[int]] = typer.Option(None, "--instance", "-i", min=1, max=64, metavar="I",
                                                     show_default=False,
                                                     help="Restart only instance I (repeatable)."),
            timeout: float = typer.Option(120.0, "--timeout", min=1, metavar="S",
                                          help="Seconds each instance may take to be ready."),
            check_health: bool = typer.Option(True, "--health/--no-health",
                                              help="Finish with the health checks (up to S seconds for OK)."),
            config: ConfigOption = None, json: JsonOption = False) -> None:
    """Restart this host's session daemons through systemd, gated on the database (exit 1 at the first failure).

    Each restarted instance must show a heartbeat from a new pid, status running, and no
    runnable account left unowned past daemon.unowned_grace, within --timeout seconds; else
    the restart stops there, naming the instance. systemctl is $SYSTEMCTL when set, else the
    one on PATH.

    Example: sudo blazzctl daemon restart --rolling --timeout 120
    """
    from blazzctl.services import rolling as service

    keep_running()  # minutes of waiting on each instance's gate
    st = state(config)
    chosen = sorted(set(only)) if only else list(range(1, (instances or st.settings.daemon.instances) + 1))
    say = (lambda _text: None) if json else output.say
    done = service.restart(st.db, st.settings, instances=chosen, rolling=rolling, timeout=timeout, progress=say)
    report = service.check_health(st.settings, timeout=timeout, progress=say) if check_health else None
    if json:
        output.emit_json({"restarted": [vars(r) for r in done],
                          "health": report.as_dict() if report is not None else None})


def _mb(value: int | None) -> str | None:
    return None if value is None else f"{value / 1048576:.0f} MB"
