"""`blazzctl apikey`: the credentials of the HTTP API (blazz-api), one workspace each."""

from __future__ import annotations

from typing import List, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, WorkspaceOption, state
from blazzctl.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys of the HTTP API.")


@app.command("create")
def create(workspace: WorkspaceOption = None,
           name: str = typer.Option(..., "--name", help="A name for the key, unique among the workspace's live keys."),
           scope: List[str] = typer.Option(..., "--scope", metavar="SCOPE",
                                           help="accounts:read, accounts:write, messages:read, messages:send, "
                                                "webhooks:manage or sync:run; repeat for several."),
           expires: Optional[int] = typer.Option(None, "--expires", metavar="DAYS", min=1, max=3650,
                                                 help="Days until the key stops working (default: never)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Create an API key for a workspace. The token is printed here once; only its hash is stored.

    Example: blazzctl apikey create --workspace acme --name app --scope accounts:read --scope messages:send
    """
    from blazzctl.services import apikeys, refs

    if not workspace:
        raise InvalidInput("no workspace given", hint="Give --workspace WS (or set BLAZZ_WORKSPACE).")
    with state(config).db.session() as session:
        ws = refs.workspace(session, workspace)
        key, token = apikeys.create(session, workspace=ws, name=name, scopes=scope, expires_days=expires)
        view = {**apikeys.view(key, ws.name), "token": token}
    if json:
        output.emit_json(view)
        return
    output.say(f"created API key {view['id']} ({view['name']}) of workspace {view['workspace']}: "
               f"{', '.join(view['scopes'])}")
    output.say(f"token (shown only now): {token}")


@app.command("list")
def list_(workspace: WorkspaceOption = None,
          revoked: bool = typer.Option(False, "--revoked", help="Include revoked keys."),
          config: ConfigOption = None, json: JsonOption = False) -> None:
    """List API keys (never their tokens), of one workspace or of all.

    Example: blazzctl apikey list --workspace acme
    """
    from blazzctl.services import apikeys, refs, workspaces

    with state(config).db.session() as session:
        ws = refs.workspace(session, workspace) if workspace else None
        names = {w.id: w.name for w in ([ws] if ws else workspaces.list_all(session))}
        rows = [apikeys.view(k, names.get(k.workspace_id)) for k in apikeys.list_keys(session, workspace=ws,
                                                                                   revoked=revoked)]
    if json:
        output.emit_json(rows)
        return
    output.table(["ID", "WORKSPACE", "NAME", "PREFIX", "SCOPES", "EXPIRES", "LAST USED", "REVOKED"],
                 ([r["id"], r["workspace"], r["name"], r["prefix"], ",".join(r["scopes"]), r["expires_at"],
                   r["last_used_at"], r["revoked_at"]] for r in rows),
                 empty="no API keys: blazzctl apikey create --workspace WS --name NAME --scope SCOPE")


@app.command("revoke")
def revoke(ref: str = typer.Argument(..., metavar="KEY", help="Key id, prefix (blz_…) or name."),
           workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Revoke an API key: the API refuses it from now on (within a few seconds on every worker).

    Example: blazzctl apikey revoke app --workspace acme
    """
    from blazzctl.services import apikeys, refs

    with state(config).db.session() as session:
        ws = refs.workspace(session, workspace) if workspace else None
        key = apikeys.revoke(session, key=apikeys.get(session, ref, workspace=ws))
        view = apikeys.view(key, ws.name if ws else None)
    if json:
        output.emit_json(view)
    else:
        output.say(f"revoked API key {view['id']} ({view['name']})")
