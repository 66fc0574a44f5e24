"""`blazzctl chat list`, `contact list`, `group show`: what sync (and incoming messages) stored."""

from __future__ import annotations

from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, RefArgument, WorkspaceOption, state

chat_app = typer.Typer(no_args_is_help=True, help="The chats of an account.")
contact_app = typer.Typer(no_args_is_help=True, help="The contacts of an account.")
group_app = typer.Typer(no_args_is_help=True, help="The groups of an account.")

LimitOption = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Most rows to show (1-1000).")


@chat_app.command("list")
def list_chats(ref: RefArgument, workspace: WorkspaceOption = None,
               type_: Optional[str] = typer.Option(None, "--type", metavar="private|group",
                                                   help="Only private chats, or only groups."),
               unread: bool = typer.Option(False, "--unread", help="Only chats with unread messages."),
               limit: int = LimitOption,
               before: Optional[int] = typer.Option(None, "--before", metavar="CURSOR",
                                                    help="The next page: the ID of the last chat shown."),
               config: ConfigOption = None, json: JsonOption = False) -> None:
    """List an account's chats, newest message first, a page at a time.

    Example: blazzctl chat list sales --workspace acme --unread --limit 20
    """
    from blazzctl import views_sync
    from blazzctl.services import chats, refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        rows = [views_sync.chat(c) for c in chats.list_chats(session, account_id=account.id, chat_type=type_,
                                                             unread=unread, limit=limit + 1, before=before)]
        rows, more = output.page(rows, limit)
    if json:
        output.emit_json(rows)
    else:
        output.table(["ID", "JID", "TYPE", "NAME", "UNREAD", "LAST MESSAGE AT", "LAST MESSAGE"],
                     ([r["id"], r["jid"], r["chat_type"], r["name"], r["unread_count"], r["last_message_at"],
                       _short(r["last_message"])] for r in rows),
                     empty="no chats: sync them with `blazzctl sync run REF --wait`")
    output.next_page(more, json, f"--before {rows[-1]['id']}" if more else "")


@chat_app.command("read")
def read_chat(ref: RefArgument, chat: str = typer.Option(..., "--chat", metavar="JID", help="The chat's JID."),
              workspace: WorkspaceOption = None,
              wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the receipt is sent (default)."),
              timeout: float = typer.Option(30.0, "--timeout", min=1, help="Seconds to wait."),
              config: ConfigOption = None, json: JsonOption = False) -> None:
    """Mark a chat read: its unread count becomes 0 and WhatsApp gets a read receipt (blue ticks).

    Example: blazzctl chat read sales --workspace acme --chat 6281234567890@c.us
    """
    import time

    from blazzctl.errors import OperationFailed
    from blazzctl.models import AccountCommand
    from blazzctl.services import chats, refs

    st = state(config)
    with st.db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        command_id = chats.request_read(session, account=account, jid=chat).id
    deadline, status, result = time.monotonic() + timeout, "pending", None
    while wait and status in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.25)
        with st.db.session() as session:
            row = session.get(AccountCommand, command_id)
            status, result = str(row.status), row.result
    view = {"chat": chat, "command_id": command_id, "status": status, "result": result}
    if json:
        output.emit_json(view)
    elif status == "succeeded":
        output.say(f"read: {result}")
    elif not wait:
        output.say(f"unread count cleared; the read receipt is sent by the account's daemon (command {command_id})")
    if wait and status != "succeeded":
        raise OperationFailed(f"the read receipt was not sent: {result or f'still {status} after {timeout:g} s'}",
                              hint="The account must be connected: see `blazzctl account show`.")


@contact_app.command("list")
def list_contacts(ref: RefArgument, workspace: WorkspaceOption = None, limit: int = typer.Option(
                      100, "--limit", "-n", min=1, max=1000, help="Most rows to show (1-1000)."),
                  after: Optional[int] = typer.Option(None, "--after", metavar="CURSOR",
                                                      help="The next page: the ID of the last contact shown."),
                  config: ConfigOption = None, json: JsonOption = False) -> None:
    """List an account's contacts, a page at a time.

    Example: blazzctl contact list sales --workspace acme --json
    """
    from blazzctl import views_sync
    from blazzctl.services import chats, refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        rows, more = output.page([views_sync.contact(c) for c in chats.list_contacts(
            session, account_id=account.id, limit=limit + 1, after=after)], limit)
    if json:
        output.emit_json(rows)
    else:
        output.table(["ID", "JID", "PHONE", "NAME", "PUSH NAME", "BUSINESS"],
                     ([r["id"], r["jid"], r["phone_number"], r["name"], r["push_name"],
                       "yes" if r["is_business"] else ""] for r in rows),
                     empty="no contacts: sync them with `blazzctl sync run REF --kind contacts --wait`")
    output.next_page(more, json, f"--after {rows[-1]['id']}" if more else "")


@group_app.command("show")
def show_group(ref: RefArgument, jid: str = typer.Argument(..., metavar="JID", help="Group JID (…@g.us, or digits)."),
               workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Show a group of an account with its participants.

    Example: blazzctl group show sales 120363012345678901@g.us --workspace acme
    """
    from blazzctl import views_sync
    from blazzctl.services import chats, refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        view = views_sync.group(*chats.get_group(session, account_id=account.id, jid=jid))
    if json:
        output.emit_json(view)
        return
    output.fields([(k, v) for k, v in view.items() if k != "participants"])
    output.say("")
    output.table(["PARTICIPANT", "PHONE", "ROLE"],
                 ([p["jid"], p["phone_number"], "superadmin" if p["is_super_admin"] else "admin" if p["is_admin"] else ""]
                  for p in view["participants"]), empty="no participants")


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
