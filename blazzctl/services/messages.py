"""Messages: queue an outbound message (the owning daemon sends it), and read messages back.

`send` validates everything before it writes, and stores a media file's bytes with the message
(so the daemon that sends it needs no access to the file); the daemon does the rest (rate
limit, number check, sending, acks). The same idempotency key for the same account returns the
message already queued instead of sending a second one; for another message it is refused.

A message waits (``pending``) only for an account that can send again: one never linked is
refused. Pending messages end as ``cancelled`` (`cancel`, or their account removed) or, once
older than ``messages.pending_ttl``, as ``failed`` with error ``expired`` (`expire_overdue`).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, exc, or_, select
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.enums import AccountStatus, DesiredState, Direction, MessageStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound, OperationFailed
from blazzctl.models import Chat, Message, WhatsAppAccount
from blazzctl.services import audit, message_media

TEXT_MAX = 65536
_JID = re.compile(r"^(\d{5,20}@(c\.us|s\.whatsapp\.net|lid)|[\d-]{5,40}@g\.us)$")


def chat_jid(to: str) -> str:
    """A chat JID from a JID or a phone number in any form (E.164 → digits@c.us)."""
    to = to.strip()
    if "@" in to:
        if not _JID.match(to):
            raise InvalidInput(f"{to!r} is not a WhatsApp chat id",
                               hint="Use a phone number (+62 812-3456-7890), NUMBER@c.us, LID@lid or GROUP@g.us.")
        return to.replace("@s.whatsapp.net", "@c.us")
    return validate.phone_e164(to).lstrip("+") + "@c.us"


def media_kind(mimetype: str) -> str:
    top = mimetype.split("/")[0]
    return top if top in ("image", "video", "audio") else "document"


@dataclass(frozen=True)
class MediaFile:
    path: Path
    mimetype: str
    size: int
    kind: str


def check_media(path: str, limits_mb: dict) -> MediaFile:
    file = Path(path).expanduser()
    if not file.is_file():
        raise InvalidInput(f"media file {path!r} does not exist", hint="Give the path of a readable file.")
    try:
        size = file.stat().st_size
        with open(file, "rb"):
            pass
    except OSError as error:
        raise InvalidInput(f"cannot read media file {path!r}: {error.strerror}") from None
    mimetype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    kind = media_kind(mimetype)
    limit = float(limits_mb.get(kind, 100)) * 1024 * 1024
    if size == 0:
        raise InvalidInput(f"media file {path!r} is empty")
    if size > limit:
        raise InvalidInput(f"media file {path!r} is {size / 1048576:.1f} MB; the limit for {kind} is "
                           f"{limit / 1048576:g} MB", hint="Send a smaller file (see messages.media_max_mb).")
    return MediaFile(file.resolve(), mimetype, size, kind)


def send(session: Session, *, account: WhatsAppAccount, to: str, text: str | None = None,
         media: str | None = None, caption: str | None = None, reply_to: str | None = None,
         idempotency_key: str | None = None, media_limits_mb: dict | None = None) -> tuple[Message, bool]:
    """Queue a message; returns (message, created). Validates before writing anything.

    A media file's bytes are stored with the message (`message_media.store`), in the caller's
    transaction; ``media_path`` keeps where they came from, for display.
    """
    if (text is None) == (media is None):
        raise InvalidInput("give exactly one of --text and --media")
    if caption is not None and media is None:
        raise InvalidInput("--caption goes with --media")
    jid = chat_jid(to)
    if text is not None and not (0 < len(text) <= TEXT_MAX):
        raise InvalidInput(f"the text must have 1 to {TEXT_MAX} characters")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 128):
        raise InvalidInput("an idempotency key has 1 to 128 characters")
    file = check_media(media, media_limits_mb or {}) if media is not None else None
    if not linked(account):  # only a repeat of a message queued while it was linked is answered
        existing = _by_key(session, account.id, idempotency_key) if idempotency_key else None
        if existing is not None:
            return _same_or_conflict(existing, jid, text, file, caption, reply_to), False
        ensure_linked(account)
    message = Message(
        workspace_id=account.workspace_id, whatsapp_account_id=account.id, chat_jid=jid, direction=Direction.OUT,
        type=file.kind if file else "text", body=text if file is None else caption,
        media_path=str(file.path) if file else None, media_mimetype=file.mimetype if file else None,
        media_size=file.size if file else None, media_filename=file.path.name if file else None,
        quoted_wa_message_id=reply_to, status=MessageStatus.PENDING, idempotency_key=idempotency_key)
    # The key is looked up only when the insert finds it taken (its unique index): a new key,
    # the usual case, costs no query; a repeated one, or a concurrent send with the same key
    # that won, gets the message already queued.
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except exc.IntegrityError:
        existing = _by_key(session, account.id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _same_or_conflict(existing, jid, text, file, caption, reply_to), False
    if file is not None:
        message_media.store(session, message_id=message.id, path=file.path, size=file.size)
    audit.record(session, command="message send", target_type="message", target=message.uuid,
                 workspace_id=account.workspace_id, details={"account_id": account.id, "to": jid})
    return message, True


def linked(account: WhatsAppAccount) -> bool:
    """Whether the account has a login to send with: it connected once and was not logged out
    since (``connected_at`` is cleared then)."""
    return account.connected_at is not None and account.status != AccountStatus.LOGGED_OUT


def ensure_linked(account: WhatsAppAccount) -> None:
    """Refuse to queue for an account that has no login to send with: its messages would wait for nothing."""
    if not linked(account):
        raise OperationFailed(f"account {account.name!r} is not linked to a phone (it never connected, or it was "
                              "logged out): nothing was queued",
                              hint=f"Connect it first: blazzctl account connect {account.name} "
                                   f"--workspace {account.workspace.name}")


def not_connected_warning(account: WhatsAppAccount, *, ttl: float) -> str | None:
    """Why a message queued for this account will wait, or None when it is connected."""
    if account.status == AccountStatus.CONNECTED:
        return None
    why = f" ({account.status_reason})" if account.status_reason else ""
    action = ("" if account.desired_state == DesiredState.RUNNING
              else f"; connect it: blazzctl account connect {account.name} --workspace {account.workspace.name}")
    return (f"account {account.name!r} is {account.status}{why}: the message waits until it is connected "
            f"again, for up to {_duration(ttl)} (messages.pending_ttl), then fails as expired{action}")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _same_or_conflict(existing: Message, jid: str, text: str | None, file: MediaFile | None,
                      caption: str | None, reply_to: str | None) -> Message:
    """The message already queued under this key, when it is the same message; else a conflict."""
    body = text if file is None else caption
    same = (existing.chat_jid == jid and existing.body == body and existing.quoted_wa_message_id == reply_to
            and existing.type == (file.kind if file else "text")
            and (file is None or (existing.media_path == str(file.path) and existing.media_size == file.size)))
    if not same:
        raise Conflict(f"idempotency key {existing.idempotency_key!r} was already used for another message "
                       f"(message {existing.id} to {existing.chat_jid}, status {existing.status})",
                       hint="Use a new key for a new message; the same key only repeats the same message.")
    return existing


def _by_key(session: Session, account_id: int, key: str) -> Message | None:
    return session.scalars(select(Message).where(Message.whatsapp_account_id == account_id,
                                                 Message.idempotency_key == key)).first()


def get(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message


def account_names(session: Session, account_ids: set[int]) -> dict[int, tuple[str, str]]:
    """(workspace name, account name) by account id, for lists of messages (which carry only the id)."""
    from blazzctl.models import Workspace

    if not account_ids:
        return {}
    rows = session.execute(select(WhatsAppAccount.id, Workspace.name, WhatsAppAccount.name)
                           .join(Workspace, Workspace.id == WhatsAppAccount.workspace_id)
                           .where(WhatsAppAccount.id.in_(account_ids)))
    return {account_id: (ws, name) for account_id, ws, name in rows}


def list_messages(session: Session, *, account_id: int | None = None, workspace_id: int | None = None,
                  chat: str | None = None, status: str | None = None, direction: str | None = None,
                  limit: int = 50, before: int | None = None) -> list[Message]:
    """Newest first, keyset-paginated: ``before`` is the id of the last message of the previous page."""
    query = select(Message)
    if account_id is not None:
        query = query.where(Message.whatsapp_account_id == account_id)
    if workspace_id is not None:
        query = query.where(Message.workspace_id == workspace_id)
    if account_id is None and workspace_id is None:  # across workspaces: leave out removed workspaces
        from blazzctl.services.workspaces import removed_ids

        query = query.where(Message.workspace_id.not_in(removed_ids()))
    if chat is not None:
        if account_id is None:
            raise InvalidInput("--chat needs an account", hint="Give the account REF before --chat.")
        chat_id = session.scalar(select(Chat.id).where(Chat.whatsapp_account_id == account_id,
                                                       Chat.jid == chat_jid(chat)))
        query = query.where(Message.chat_id == (chat_id or -1))
    if status is not None:
        query = query.where(Message.status == _enum(MessageStatus, status, "status"))
    if direction is not None:
        query = query.where(Message.direction == _enum(Direction, direction, "direction"))
    if before is not None:
        cursor = session.execute(select(Message.created_at, Message.id).where(Message.id == before)).first()
        if cursor is None:
            raise InvalidInput(f"unknown cursor {before}", hint="Use the id of a message from the previous page.")
        query = query.where(or_(Message.created_at < cursor.created_at,
                                and_(Message.created_at == cursor.created_at, Message.id < cursor.id)))
    return list(session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)))


def _enum(enum, value: str, what: str):
    try:
        return enum(value)
    except ValueError:
        raise InvalidInput(f"unknown {what} {value!r}",
                           hint=f"Use one of: {', '.join(m.value for m in enum)}.") from None
