"""`blazzctl workspace`: the tenants that own accounts."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="Create, list and show workspaces.")


@app.command("create")
def create(name: str = typer.Argument(..., help="Workspace name (1-100 characters)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Create a workspace.

    Example: blazzctl workspace create acme
    """
    from blazzctl import views
    from blazzctl.services import workspaces

    with state(config).db.session() as session:
        ws = workspaces.create(session, name=name)
    _render(views.workspace(ws), json, f"created workspace {ws.name} (id {ws.id})")


@app.command("list")
def list_(config: ConfigOption = None, json: JsonOption = False) -> None:
    """List workspaces.

    Example: blazzctl workspace list --json
    """
    from blazzctl import views
    from blazzctl.services import workspaces

    with state(config).db.session() as session:
        rows = [views.workspace(ws) for ws in workspaces.list_all(session)]
    if json:
        output.emit_json(rows)
    else:
        output.table(["ID", "NAME", "UUID", "CREATED"], ([r["id"], r["name"], r["uuid"], r["created_at"]] for r in rows),
                     empty="no workspaces yet: blazzctl workspace create NAME")


@app.command("show")
def show(ref: str = typer.Argument(..., help="Workspace id, uuid or name."),
         config: ConfigOption = None, json: JsonOption = False) -> None:
    """Show one workspace.

    Example: blazzctl workspace show acme
    """
    from blazzctl import views
    from blazzctl.services import refs

    with state(config).db.session() as session:
        ws = views.workspace(refs.workspace(session, ref))
    _render(ws, json)


def _render(ws: dict, json: bool, message: str | None = None) -> None:
    if json:
        output.emit_json(ws)
    elif message:
        output.say(message)
    else:
        output.fields(list(ws.items()))
