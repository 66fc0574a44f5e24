"""`blazzctl quickstart`: one command from a fresh install to a linked WhatsApp account."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, keep_running, state
from blazzctl.errors import OperationFailed


def quickstart(workspace: str = typer.Option("default", "--workspace", "-w", help="Workspace to use or create."),
               name: str = typer.Option("default", "--name", help="Account to use or create."),
               timeout: float = typer.Option(300.0, "--timeout", min=10, help="Seconds to wait for the phone."),
               config: ConfigOption = None) -> None:
    """Create the database, a workspace and an account, start a session daemon, and link a phone.

    Shows the QR code here; scan it with WhatsApp on the phone (Linked devices). The daemon
    keeps running in the foreground afterwards; Ctrl-C stops it cleanly.

    Example: blazzctl quickstart
    """
    from blazzctl.services import schema
    from blazzctl.services import quickstart as qs
    from daemons.supervisor import Supervisor

    keep_running()
    st = state(config)
    url = st.settings.providers.webjs.url
    qs.check_reachable(url)
    schema.upgrade(st.db)
    with st.db.session() as session:
        account_id, created = qs.ensure_account(session, workspace=workspace, name=name)
    output.say(f"{'created' if created else 'using'} account {name!r} in workspace {workspace!r}")
    supervisor = None
    with st.db.session() as session:
        live = qs.live_daemon_count(session, st.settings)
    if not live:
        supervisor = Supervisor(1, config=st.config_path)
        supervisor.start()
        output.say("started a session daemon (blazz-sessiond --instance 1)")
    try:
        from blazzctl.cli.connect import _request

        _request("connect", str(account_id), None, True, timeout, config, False)
    except (OperationFailed, KeyboardInterrupt):
        if supervisor is not None:
            supervisor.stop_all()
        raise
    if supervisor is not None:
        output.say("the session daemon keeps the account online; Ctrl-C stops it "
                   "(or install the systemd units: blazzctl units install)")
        raise typer.Exit(supervisor.wait())
