"""`blazzctl message`: send a message through an account, and read messages."""

from __future__ import annotations

import time
from typing import List, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, RefArgument, WorkspaceOption, keep_running, state
from blazzctl.errors import InvalidInput, OperationFailed

app = typer.Typer(no_args_is_help=True, help="Send messages, list them, cancel pending ones, resend unknown ones.")

ORDER = ["pending", "sending", "handed", "sent", "delivered", "read", "played"]
FINAL = ("failed", "cancelled", "unknown")  # a message in these moves again only by an operator


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
        view = views.message(message, account.name)
        waits = (messages.not_connected_warning(account, ttl=st.settings.messages.pending_ttl)
                 if message.status == "pending" else None)
    if not json:
        output.say(f"{'queued' if created else 'already queued (same idempotency key)'}: message {view['id']} "
                   f"to {view['chat_jid']}")
    if waits:
        output.warn(f"warning: {waits}")
    if wait:
        queued_to = view["chat_jid"]
        view = _wait(st, view, until, timeout, quiet=json)
        if view["chat_jid"] != queued_to and not json:  # WhatsApp knows the number under another id
            output.say(f"addressed to {view['chat_jid']}: WhatsApp's id for the number typed ({queued_to})")
    if json:
        output.emit_json(view)
    if wait and view["status"] not in ORDER[ORDER.index(until):]:
        reason = view["error"] or f"still {view['status']} after {timeout:g} s{_why_pending(st, view)}"
        raise OperationFailed(f"message {view['id']} did not reach {until}: {reason}",
                              hint="See `blazzctl message list` and `blazzctl account show`.")


def _wait(st, view: dict, until: str, timeout: float, *, quiet: bool) -> dict:
    from blazzctl import views
    from blazzctl.services import messages

    deadline, last = time.monotonic() + timeout, None
    keep_running()
    while True:
        with st.db.session() as session:
            view = views.message(messages.get(session, view["id"]), view["account"])
        if view["status"] != last and not quiet:
            output.say(f"status: {view['status']}")
        last = view["status"]
        if view["status"] in FINAL or view["status"] in ORDER[ORDER.index(until):] or time.monotonic() > deadline:
            return view
        time.sleep(0.25)


def _why_pending(st, view: dict) -> str:
    """For a message still pending: what it waits for (its account's state)."""
    from blazzctl.services import pending

    if view["status"] != "pending":
        return ""
    with st.db.session() as session:
        return f": {pending.why_pending(session, message_id=view['id'])}"


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
        found = messages.list_messages(
            session, account_id=account.id if account else None, workspace_id=ws.id if ws else None, chat=chat,
            status=status, direction=direction, limit=limit + 1, before=before)
        names = messages.account_names(session, {m.whatsapp_account_id for m in found})
        rows, more = output.page([views.message(m, names[m.whatsapp_account_id][1]) for m in found], limit)
    if json:
        output.emit_json(rows)
    else:
        # Names repeat across workspaces: a list spanning them says whose account a row is.
        label = ((lambda r: r["account"]) if account or ws
                 else (lambda r: "/".join(names[r["whatsapp_account_id"]])))
        output.table(["ID", "TIME", "ACCOUNT", "DIR", "CHAT", "TYPE", "STATUS", "BODY"],
                     ([r["id"], r["created_at"], label(r), r["direction"], r["chat_jid"], r["type"], r["status"],
                       (r["body"] or "")[:60]] for r in rows), empty="no messages")
    output.next_page(more, json, f"--before {rows[-1]['id']}" if more else "")


@app.command("media")
def media(ref: RefArgument,
          wa_message_id: str = typer.Argument(..., metavar="WA_MESSAGE_ID", help="The message's WhatsApp id."),
          out: str = typer.Option(..., "--out", metavar="FILE", help="Where to write the media ('-': stdout)."),
          workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Write the media of a received message (stored in the database: any host can read it).

    Example: blazzctl message media sales false_6281234567890@c.us_3EB0C0FFEE --workspace acme --out photo.jpg
    """
    import sys
    from pathlib import Path

    from blazzctl.services import message_media, refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        message, data = message_media.received(session, account_id=account.id, wa_message_id=wa_message_id)
        info = {"message_id": message.id, "wa_message_id": message.wa_message_id, "mimetype": message.media_mimetype,
                "filename": message.media_filename, "size": len(data), "out": out}
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(out).expanduser().write_bytes(data)
    except OSError as error:
        raise InvalidInput(f"cannot write {out!r}: {error.strerror}", hint="Give a writable path.") from None
    if json:
        output.emit_json(info)
    else:
        output.say(f"wrote {len(data)} bytes ({info['mimetype']}) to {out}")


@app.command("resend")
def resend(ref: RefArgument,
           ids: List[str] = typer.Argument(..., metavar="ID", help="Ids (or uuids) of messages with status unknown."),
           workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Send messages with status unknown again (all named, or none: exit 3 for an unknown id, 4 for
    one not unknown). Unknown: a daemon handed it to its page and stopped before WhatsApp's answer
    was known. If WhatsApp did get it, the recipient gets it twice; `message cancel` drops it instead.

    Example: blazzctl message resend sales 17 --workspace acme
    """
    from blazzctl.services import pending

    _operate(pending.resend, "queued again", ref, ids, workspace, config, json)


@app.command("cancel")
def cancel(ref: RefArgument,
           ids: List[str] = typer.Argument(..., metavar="ID", help="Ids (or uuids) of pending (or unknown) messages."),
           workspace: WorkspaceOption = None, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Cancel pending (or unknown) messages of an account (all named, or none: exit 3 for an unknown
    id, 4 for one no longer pending).

    Example: blazzctl message cancel sales 17 18 --workspace acme
    """
    from blazzctl.services import pending

    _operate(pending.cancel, "cancelled", ref, ids, workspace, config, json)


def _operate(action, done: str, ref: str, ids: list[str], workspace, config, json: bool) -> None:
    """Run ``action`` (``pending.cancel`` or ``pending.resend``) on messages of one account; print them."""
    from blazzctl import views
    from blazzctl.services import refs

    with state(config).db.session() as session:
        account = refs.account(session, ref, workspace_ref=workspace)
        name = account.name
        rows = [views.message(m, name) for m in action(session, account=account, refs=ids)]
    if json:
        output.emit_json(rows)
    else:
        output.say(f"{done} {len(rows)} message(s) of {name}: {', '.join(str(r['id']) for r in rows)}")
