"""`blazzctl account`: the WhatsApp accounts of a workspace."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from blazzctl.cli import connect, output
from blazzctl.cli.context import ConfigOption, JsonOption, RefArgument, WorkspaceOption, state
from blazzctl.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Add, list, show, update, remove accounts; choose the primary.")


@app.command("add")
def add(workspace: WorkspaceOption = None,
        name: str = typer.Option(..., "--name", help="Account name, unique in the workspace."),
        phone: Optional[str] = typer.Option(None, "--phone", help="Phone number, any form (stored as E.164)."),
        provider: str = typer.Option("webjs", "--provider", help="Provider: webjs (WhatsApp Web)."),
        config: ConfigOption = None, json: JsonOption = False) -> None:
    """Add an account to a workspace. It starts disconnected and not primary.

    Example: blazzctl account add --workspace acme --name sales --phone "+62 812-3456-7890"
    """
    from blazzctl import views
    from blazzctl.services import accounts, refs

    if not workspace:
        raise InvalidInput("no workspace given", hint="Give --workspace WS (or set BLAZZ_WORKSPACE).")
    with state(config).db.session() as session:
        acc = accounts.add(session, workspace=refs.workspace(session, workspace), name=name, phone=phone,
                           provider=provider)
        view = views.account(acc)
    _render(view, json, f"added account {view['name']} (id {view['id']}) to workspace {view['workspace']}")


@app.command("list")
def list_(workspace: WorkspaceOption = None,
          status: Optional[str] = typer.Option(None, "--status", help="Only accounts with this status."),
          limit: int = typer.Option(100, "--limit", "-n", min=1, max=100000, help="Accounts per page."),
          after: Optional[int] = typer.Option(None, "--after", metavar="ID",
                                              help="Next page: the last id of the previous page."),
          config: ConfigOption = None, json: JsonOption = False) -> None:
    """List accounts, of one workspace or of all, in id order, a page at a time.

    Example: blazzctl account list --workspace acme --status connected
    """
    from blazzctl.services import accounts, refs

    with state(config).db.session() as session:
        ws = refs.workspace(session, workspace) if workspace else None
        rows, more = output.page(accounts.account_views(session, workspace=ws, status=status, limit=limit + 1,
                                                        after=after), limit)
    if json:
        output.emit_json(rows)
    else:
        output.table(["ID", "WORKSPACE", "NAME", "PHONE", "STATUS", "PRIMARY", "OWNER"],
                     ([r["id"], r["workspace"], r["name"], r["phone_number"], r["status"],
                       r["is_primary"], r["owner"]] for r in rows),  # yes/no as `account show` says it
                     empty="no accounts: blazzctl account add --workspace WS --name NAME")
    output.next_page(more, json, f"--after {rows[-1]['id']}" if more else "")


@app.command("show")
def show(ref: RefArgument, workspace: WorkspaceOption = None, config: ConfigOption = None,
         json: JsonOption = False) -> None:
    """Show one account.

    Example: blazzctl account show sales --workspace acme
    """
    from blazzctl import views
    from blazzctl.services import refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        view = views.account(account)
    _render(view, json)


@app.command("update")
def update(ref: RefArgument, workspace: WorkspaceOption = None,
           name: Optional[str] = typer.Option(None, "--name", help="New name."),
           phone: Optional[str] = typer.Option(None, "--phone", help="New phone number."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Rename an account or change its phone number.

    Example: blazzctl account update sales --workspace acme --name support
    """
    from blazzctl import views
    from blazzctl.services import accounts, refs

    with state(config).db.session() as session:
        acc = accounts.update_account(session, account=refs.account(session, ref, workspace_ref=workspace),
                                      name=name, phone=phone)
        view = views.account(acc)
    _render(view, json, f"updated account {view['name']} (id {view['id']})")


@app.command("remove")
def remove(ref: RefArgument, workspace: WorkspaceOption = None,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           force: bool = typer.Option(False, "--force", help="Remove even a connected account."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Remove an account (soft delete): it disappears from every command; its pending messages are cancelled.

    Example: blazzctl account remove sales --workspace acme --yes
    """
    from blazzctl import views
    from blazzctl.services import accounts, refs

    with state(config).db.session() as session:
        acc = refs.account(session, ref, workspace_ref=workspace)
        if not yes:
            _confirm(f"Remove account {acc.name!r} of workspace {acc.workspace.name!r}?")
        view = views.account(accounts.remove(session, account=acc, force=force))
    _render(view, json, f"removed account {view['name']} (id {view['id']})")


@app.command("primary")
def primary(ref: RefArgument, workspace: WorkspaceOption = None, config: ConfigOption = None,
            json: JsonOption = False) -> None:
    """Make an account its workspace's primary account (the others stop being primary).

    Example: blazzctl account primary sales --workspace acme
    """
    from blazzctl import views
    from blazzctl.services import accounts, refs

    with state(config).db.session() as session:
        acc = accounts.make_primary(session, account=refs.account(session, ref, workspace_ref=workspace))
        view = views.account(acc)
    _render(view, json, f"{view['name']} is now the primary account of workspace {view['workspace']}")


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise InvalidInput("confirmation needed, and there is no terminal to ask on", hint="Add --yes.")
    if not typer.confirm(question, default=False):
        raise InvalidInput("not confirmed; nothing was changed")


def _render(view: dict, json: bool, message: str | None = None) -> None:
    if json:
        output.emit_json(view)
    elif message:
        output.say(message)
    else:
        output.fields(list(view.items()))


# Logging in and out are account commands too; they live in their own module.
for _name in ("connect", "disconnect", "reconnect", "logout", "qr"):
    app.command(_name)(getattr(connect, _name))
