"""`blazzctl quickstart`: one command from a fresh install to a linked WhatsApp account."""

from __future__ import annotations

import sys

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, keep_running, state
from blazzctl.errors import OperationFailed


def quickstart(workspace: str = typer.Option("default", "--workspace", "-w", help="Workspace to use or create."),
               name: str = typer.Option("default", "--name", help="Account to use or create."),
               timeout: float = typer.Option(300.0, "--timeout", min=10, help="Seconds to wait for the phone."),
               config: ConfigOption = None, json: JsonOption = False) -> None:
    """Create the database, a workspace and an account, start a session daemon, and link a phone.

    Shows the QR code here (on a terminal: the QR and one status line, redrawn in place; the
    daemon's log goes to a file under its state directory, named on screen); scan it with
    WhatsApp on the phone (Linked devices). The daemon keeps running in the foreground
    afterwards; Ctrl-C stops it cleanly. With --json, no QR is drawn (read it with `blazzctl
    account qr NAME --workspace WS --json`), progress goes to stderr, and the outcome is `account
    connect --json`'s, printed as soon as the phone has linked.

    Example: blazzctl quickstart
    """
    from blazzctl.services import quickstart as qs
    from blazzctl.services import schema

    keep_running()
    say = output.warn if json else output.say  # stdout stays pure JSON
    st = state(config)
    url = st.settings.providers.webjs.url
    qs.check_reachable(url)
    schema.upgrade(st.db)
    say(f"database: {qs.where_database(st.settings.database_url)}")
    with st.db.session() as session:
        account_id, created = qs.ensure_account(session, workspace=workspace, name=name)
    say(f"{'created' if created else 'using'} account {name!r} in workspace {workspace!r}")
    with st.db.session() as session:
        live = qs.live_daemon_count(session, st.settings)
    supervisor = None if live else _start_daemon(st, say)
    # A timeout stops the daemon started here, and so the login: say that, not "it keeps waiting".
    gave_up = None if supervisor is None else "The session daemon started here stops too: run " \
        "`blazzctl quickstart` again for a new QR code."
    try:
        _link(account_id, timeout, config, gave_up, json)
    except (OperationFailed, KeyboardInterrupt):
        if supervisor is not None:
            supervisor.stop_all()
        raise
    if supervisor is not None:
        sys.stdout.flush()  # the outcome reaches a reading script now, not when the daemon stops
        raise typer.Exit(_keep_online(supervisor, say))


def _keep_online(supervisor, say) -> int:
    """Supervise the daemon started here in the foreground until Ctrl-C: its exit code."""
    try:
        say("the session daemon keeps the account online; Ctrl-C stops it")
        say("(to run it as a service: blazzctl units install)")
        return supervisor.wait()
    except KeyboardInterrupt:  # Ctrl-C a moment before wait() took it over: the same clean stop
        supervisor.stop_all()
        return 0


def _start_daemon(st, say):
    """One session daemon in the background, its log in a file so it cannot scroll the QR away."""
    from blazzctl.services import quickstart as qs
    from daemons.supervisor import Supervisor

    log_path = qs.daemon_log_path(st.settings)
    supervisor = Supervisor(1, config=st.config_path)
    supervisor.logs = qs.open_daemon_log(log_path)
    supervisor.start()
    say("started a session daemon (blazz-sessiond --instance 1)")
    say(f"daemon log: {log_path}  (tail -f it to follow the daemon)")
    return supervisor


def _link(account_id: int, timeout: float, config: str | None, gave_up: str | None, json: bool) -> None:
    """Connect the account and wait for the phone: in place on a terminal, line by line elsewhere."""
    from blazzctl.cli import login_view
    from blazzctl.cli.connect import _request

    if json or not login_view.usable():
        _request("connect", str(account_id), None, True, timeout, config, json, timeout_hint=gave_up)
        return
    output.say("scan the QR code with WhatsApp on the phone (Ctrl-C stops):")
    output.say("Settings > Linked devices > Link a device")
    with login_view.LiveLogin() as display:
        _request("connect", str(account_id), None, True, timeout, config, False, display=display,
                 timeout_hint=gave_up)
