"""`blazzctl workspace`: the tenants that own accounts."""

from __future__ import annotations

import sys

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state
from blazzctl.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Create, list, show, rename and remove workspaces.")


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


@app.command("rename")
def rename(old: str = typer.Argument(..., metavar="OLD", help="Workspace id, uuid or name."),
           new: str = typer.Argument(..., metavar="NEW", help="New name (1-100 characters, not taken)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Rename a workspace. Its id and uuid stay; scripts and $BLAZZ_WORKSPACE that use the old name
    need the new one.

    Example: blazzctl workspace rename acme acme-corp
    """
    from blazzctl import views
    from blazzctl.services import refs, workspaces

    with state(config).db.session() as session:
        before, ws = workspaces.rename(session, workspace=refs.workspace(session, old), name=new)
        view = views.workspace(ws)
    message = (f"workspace {before} already has that name; nothing changed" if before == view["name"]
               else f"renamed workspace {before} to {view['name']} (id {view['id']})")
    _render(view, json, message)


@app.command("remove")
def remove(ref: str = typer.Argument(..., metavar="WS", help="Workspace id, uuid or name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           force: bool = typer.Option(False, "--force",
                                      help="Also stop and remove connected or running accounts."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Remove a workspace (offboard a tenant; soft delete): its accounts are removed, its webhooks
    deleted, its API keys revoked, and it disappears from every command; its name is free again.

    Refused while an account is connected or running, unless --force.

    Example: blazzctl workspace remove acme --yes
    """
    from blazzctl import views
    from blazzctl.services import refs, workspaces

    with state(config).db.session() as session:
        ws = refs.workspace(session, ref)
        if not yes:
            if not force:  # refused anyway: do not ask first
                workspaces.refuse_live(session, workspace=ws)
            _confirm(f"Remove workspace {ws.name!r} (id {ws.id}) with all its accounts and webhooks?")
        removal = workspaces.remove(session, workspace=ws, force=force)
        view = {**views.workspace(ws), "removed_at": views.iso(ws.deleted_at), "accounts_removed": removal.accounts,
                "webhooks_deleted": removal.webhooks, "api_keys_revoked": removal.api_keys}
    _render(view, json, f"removed workspace {view['name']} (id {view['id']}): {len(removal.accounts)} account(s) "
                        f"removed, {removal.webhooks} webhook(s) deleted, {removal.api_keys} API key(s) revoked")


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise InvalidInput("confirmation needed, and there is no terminal to ask on", hint="Add --yes.")
    if not typer.confirm(question, default=False):
        raise InvalidInput("not confirmed; nothing was changed")


def _render(ws: dict, json: bool, message: str | None = None) -> None:
    if json:
        output.emit_json(ws)
    elif message:
        output.say(message)
    else:
        output.fields(list(ws.items()))
