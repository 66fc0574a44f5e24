"""`blazzctl audit`: who changed what."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, WorkspaceOption, state

app = typer.Typer(no_args_is_help=True, help="The audit trail of mutating commands.")


@app.command("list")
def list_(workspace: WorkspaceOption = None,
          limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000, help="Most events to show."),
          config: ConfigOption = None, json: JsonOption = False) -> None:
    """List recorded commands, newest first.

    Example: blazzctl audit list --workspace acme --limit 20
    """
    from blazzctl import views
    from blazzctl.services import audit, refs

    with state(config).db.session() as session:
        ws_id = refs.workspace(session, workspace).id if workspace else None
        rows = [views.audit_event(e) for e in audit.list_events(session, workspace_id=ws_id, limit=limit)]
    if json:
        output.emit_json(rows)
        return
    output.table(["TIME", "USER", "COMMAND", "TARGET"],
                 ([r["created_at"], r["os_user"] + (f" (sudo {r['sudo_user']})" if r["sudo_user"] else ""),
                   r["command"], r["target"]] for r in rows), empty="no audit events")
