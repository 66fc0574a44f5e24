"""`blazzctl message`: send a message through an account, and read messages."""

from __future__ import annotations

import time
from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, RefArgument, WorkspaceOption, keep_running, state
from blazzctl.errors import InvalidInput, OperationFailed

app = typer.Typer(no_args_is_help=True, help="Send messages and list them.")

ORDER = ["pending", "sending", "sent", "delivered", "read", "played"]


@app.command("send")
def send(ref: RefArgument, workspace: WorkspaceOption = None,
         to: str = typer.Option(..., "--to", metavar="PHONE_OR_JID", help="Phone number (any form) or chat JID."),
         text: Optional[str] = typer.Option(None, "--text", help="The text to send."),
         media: Optional[str] = typer.Option(None, "--media", metavar="FILE", help="A file to send."),
         caption: Optional[str] = typer.Option(None, "--caption", help="Caption of the media."),
         reply_to: Optional[str] = typer.Option(None, "--reply-to", metavar="WA_MESSAGE_ID",
                                                help="Quote this message."),
         idempotency_key: Optional[str] = typer.Option(None, "--idempotency-key", metavar="KEY",
                                                       help="Same key, same account: the message is sent once."),
         wait: bool = typer.Option(False, "--wait", help="Wait until the message reaches --until."),
         until: str = typer.Option("sent", "--until", help="sent, delivered or read (with --wait)."),
         timeout: float = typer.Option(60.0, "--timeout", min=1, help="Seconds to wait (with --wait)."),
         config: ConfigOption = None, json: JsonOption = False) -> None:
    """Queue a message; the daemon that holds the account sends it (rate-limited).

    Example: blazzctl message send sales --workspace acme --to "+62 812-3456-7890" --text "Hello" --wait
    """
    from blazzctl import views
    from blazzctl.services import messages, refs

    if until not in ("sent", "delivered", "read"):
        raise InvalidInput(f"--until {until!r} is not one of sent, delivered, read")
    st = state(config)
    with st.db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        message, created = messages.send(session, account=account, to=to, text=text, media=media, caption=caption,
                                         reply_to=reply_to, idempotency_key=idempotency_key,
                                         media_limits_mb=st.settings.messages.media_max_mb)
        view = views.message(message)
    if not json:
        output.say(f"{'queued' if created else 'already queued (same idempotency key)'}: message {view['id']} "
                   f"to {view['chat_jid']}")
    if wait:
        view = _wait(st, view["id"], until, timeout, quiet=json)
    if json:
        output.emit_json(view)
    if wait and view["status"] not in ORDER[ORDER.index(until):]:
        reason = view["error"] or f"still {view['status']} after {timeout:g} s"
        raise OperationFailed(f"message {view['id']} did not reach {until}: {reason}",
                              hint="See `blazzctl message list` and `blazzctl account show`.")


def _wait(st, message_id: int, until: str, timeout: float, *, quiet: bool) -> dict:
    from blazzctl import views
    from blazzctl.services import messages

    deadline, last = time.monotonic() + timeout, None
    keep_running()
    while True:
        with st.db.session() as session:
            view = views.message(messages.get(session, message_id))
        if view["status"] != last and not quiet:
            output.say(f"status: {view['status']}")
        last = view["status"]
        if view["status"] == "failed" or view["status"] in ORDER[ORDER.index(until):] or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


@app.command("list")
def list_(ref: Optional[str] = typer.Argument(None, metavar="[REF]", help="Account (default: all accounts)."),
          workspace: WorkspaceOption = None,
          chat: Optional[str] = typer.Option(None, "--chat", metavar="JID", help="Only this chat."),
          status: Optional[str] = typer.Option(None, "--status", help="Only this status."),
          direction: Optional[str] = typer.Option(None, "--direction", help="in or out."),
          limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000, help="Messages per page."),
          before: Optional[int] = typer.Option(None, "--before", metavar="CURSOR",
                                               help="Next page: the last id of the previous page."),
          config: ConfigOption = None, json: JsonOption = False) -> None:
    """List messages, newest first, a page at a time.

    Example: blazzctl message list sales --workspace acme --direction in --limit 20
    """
    from blazzctl import views
    from blazzctl.services import messages, refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace) if ref else None
        ws = refs.workspace(session, workspace) if workspace and not ref else None
        rows = [views.message(m) for m in messages.list_messages(
            session, account_id=account.id if account else None, workspace_id=ws.id if ws else None, chat=chat,
            status=status, direction=direction, limit=limit + 1, before=before)]
        rows, more = output.page(rows, limit)
    if json:
        output.emit_json(rows)
    else:
        output.table(["ID", "TIME", "DIR", "CHAT", "TYPE", "STATUS", "BODY"],
                     ([r["id"], r["created_at"], r["direction"], r["chat_jid"], r["type"], r["status"],
                       (r["body"] or "")[:60]] for r in rows), empty="no messages")
    output.next_page(more, json, f"--before {rows[-1]['id']}" if more else "")
