"""Inbound messages and acks: contact, chat and message stored in one fenced transaction.

A message is stored once: the WhatsApp id is unique per account. A second delivery of the
same id changes nothing (not even the unread count), except that it may complete the row:
a placeholder stored while the message was still undecrypted (``ciphertext``, status
``undecrypted``) gets its type, body and media, and ``message.updated`` is queued; the page's
echo of a message we sent completes our row (its chat, ack and timestamp). The webhook event
is queued in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import func, or_, select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import ChatType, Direction, MessageStatus, ProviderType
from blazzctl.models import Chat, Contact, Message, WhatsAppAccount
from blazzctl.services import events, message_media
from daemons.session import metrics
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.inbound")

TYPES = {"chat": "text", "ptt": "audio", "multi_vcard": "vcard"}
ACK_STATUS = {-1: MessageStatus.FAILED, 1: MessageStatus.SENT, 2: MessageStatus.DELIVERED,
              3: MessageStatus.READ, 4: MessageStatus.PLAYED}
PREVIEW = 500


def _hold(s, *, account_id: int, owner: str, epoch: int | None) -> tuple[int, str]:
    """Fence the write by our lease; ``epoch`` None is a late write (``spool.InboundWrites.late``):
    what a page of ours received and acknowledged to WhatsApp is stored even when the lease has
    moved on meanwhile (idempotent: one row per WhatsApp id; acks only move forward)."""
    if epoch is None:
        return s.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.provider_type)
                         .where(WhatsAppAccount.id == account_id)).one()
    held = s.execute(update(WhatsAppAccount).where(
        WhatsAppAccount.id == account_id, WhatsAppAccount.owner == owner, WhatsAppAccount.lease_epoch == epoch,
    ).values(last_activity_at=db_now()).execution_options(synchronize_session=False)).rowcount
    if held != 1:
        raise LeaseLost(account_id)
    return s.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.provider_type)
                     .where(WhatsAppAccount.id == account_id)).one()


CATCH_UP_MARGIN = 300  # seconds before the newest stored message the catch-up starts (clock skew)


def catch_up_since(db: Database, account_id: int) -> float | None:
    """Epoch seconds from which a new session's page is asked for messages the database may have
    missed: a margin before the account's newest chat message. None for an account with no chat
    yet (its history is sync's business)."""
    with db.read() as s:
        newest = s.scalar(select(func.max(Chat.last_message_at)).where(Chat.whatsapp_account_id == account_id))
    if newest is None:
        return None
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=timezone.utc)
    return newest.timestamp() - CATCH_UP_MARGIN


def _utc(when: datetime) -> datetime:
    """Comparable: a naive datetime (as MariaDB returns them) is UTC."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _when(message: dict) -> datetime:
    return datetime.fromtimestamp(message["t"], timezone.utc) if message.get("t") else datetime.now(timezone.utc)


def store(db: Database, *, owner: str, epoch: int, account_id: int, message: dict, settings) -> bool:
    """Store (or complete) one message from the page; False when it was a duplicate or ignored."""
    remote = message.get("remote") or ""
    wa_id = message.get("id")
    if not wa_id or not remote:
        return False
    if message.get("is_status") and (settings is None or settings.ignore_status_broadcasts):
        return False
    from_me = bool(message.get("from_me"))
    when = _when(message)
    is_group = remote.endswith("@g.us")
    with db.session() as s:
        workspace_id, provider = _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        existing = _existing(s, account_id, wa_id, from_me)
        if existing is not None:
            if existing.status == MessageStatus.UNDECRYPTED and message.get("type") != "ciphertext":
                _decrypted(s, existing, message, when)
                return True
            if from_me and existing.direction == Direction.OUT:
                _echo(s, existing, message, workspace_id, provider)
            return False
        sender = message.get("author") if is_group else (message.get("from") if not from_me else None)
        if sender and not from_me:
            remember_contact(s, workspace_id, account_id, sender, lid=message.get("sender_lid"),
                             phone=message.get("sender_phone"), push_name=message.get("notify_name"))
        chat = _chat(s, workspace_id, account_id, remote, is_group, provider)
        kind = _kind(message)
        undecrypted = kind == "ciphertext"
        _last_message(chat, kind, message, when)
        if not from_me:
            chat.unread_count = (chat.unread_count or 0) + 1
        status = MessageStatus.SENT if from_me else MessageStatus.UNDECRYPTED if undecrypted else MessageStatus.RECEIVED
        row = Message(
            workspace_id=workspace_id, whatsapp_account_id=account_id, chat_id=chat.id, chat_jid=remote,
            sender_jid=message.get("author") if is_group else None,
            direction=Direction.OUT if from_me else Direction.IN, type=kind, status=status,
            ack=message.get("ack"), wa_message_id=wa_id, created_at=when, sent_at=when if from_me else None)
        _content(row, kind, message)
        s.add(row)
        s.flush()
        _media_bytes(s, row, message)
        if not from_me:
            events.record(s, type="message.received", workspace_id=workspace_id, account_id=account_id, data={
                **_payload(row, message), "chat_type": "group" if is_group else "private", "from": sender,
                "sender_lid": message.get("sender_lid"), "sender_phone": message.get("sender_phone"),
                "push_name": message.get("notify_name"), "timestamp": when.isoformat()})
    if not from_me:  # our own messages from the phone are stored, not received
        metrics.messages_received.inc()
    return True


def _ids(wa_id: str) -> list[str]:
    """The forms our row may have stored a WhatsApp id in: as given, and without the participant
    part a group message of ours may carry (``true_<group>_<id>_<me>``). Exact values: the lookup
    stays on the (account, wa_message_id) index."""
    parts = wa_id.split("_")
    return [wa_id, "_".join(parts[:3])] if len(parts) == 4 else [wa_id]


def _existing(s, account_id: int, wa_id: str, from_me: bool) -> Message | None:
    """Our row for this message, by WhatsApp id. Our own sends are stored under the id the page
    gives them (the daemon readdresses to WhatsApp's canonical id before the send)."""
    ids = _ids(wa_id) if from_me else [wa_id]
    return s.scalars(select(Message).where(Message.whatsapp_account_id == account_id,
                                           Message.wa_message_id.in_(ids)).with_for_update()).first()


def _kind(message: dict) -> str:
    return TYPES.get(message.get("type") or "chat", message.get("type") or "text")


def _content(row: Message, kind: str, m: dict) -> None:
    row.type = kind
    row.body = m.get("body") or None
    row.media_mimetype, row.media_size = m.get("mimetype"), m.get("size")
    row.media_path, row.media_filename = m.get("media_path"), m.get("filename")
    row.quoted_wa_message_id = m.get("quoted_id")
    row.details = _details(kind, m)
    if m.get("has_media") and (m.get("sha256") or m.get("media_skipped")):
        row.details = {**(row.details or {}), "media_sha256": m.get("sha256"),
                       "media_stored": m.get("media_data") is not None, "media_skipped": m.get("media_skipped")}


def _media_bytes(s, row: Message, m: dict) -> None:
    """Received media goes into the database with its message (``messages.download_media``)."""
    if m.get("media_data") is not None and row.direction == Direction.IN:
        message_media.store_bytes(s, message_id=row.id, data=m["media_data"])


def _payload(row: Message, m: dict) -> dict:
    media = None
    if m.get("has_media"):
        media = {"mimetype": row.media_mimetype, "filename": row.media_filename, "size": row.media_size,
                 "sha256": m.get("sha256"), "stored": m.get("media_data") is not None}
    return {"message_id": row.id, "uuid": row.uuid, "wa_message_id": row.wa_message_id, "chat_jid": row.chat_jid,
            "type": row.type, "body": row.body, "status": str(row.status), "media": media}


def _decrypted(s, row: Message, message: dict, when: datetime) -> None:
    """The placeholder of a message that has now decrypted: the same row, completed."""
    kind = _kind(message)
    _content(row, kind, message)
    row.status = MessageStatus.RECEIVED
    _media_bytes(s, row, message)
    chat = s.get(Chat, row.chat_id) if row.chat_id else None
    if chat is not None and (chat.last_message_at is None or chat.last_message_at <= when):
        _last_message(chat, kind, message, when)
    s.flush()
    events.record(s, type="message.updated", workspace_id=row.workspace_id, account_id=row.whatsapp_account_id,
                  data={**_payload(row, message), "reason": "decrypted"})
    metrics.messages_received.inc()


def _echo(s, row: Message, message: dict, workspace_id: int, provider) -> None:
    """The page's copy of a message we sent: it joins its chat; a later ack moves the status on.

    While the sender still has it ``sending``, its status is left to the sender (which records
    ``message.sent``); only the chat and WhatsApp's own id are filled in.
    """
    remote = message.get("remote") or row.chat_jid
    if row.chat_id is None:
        chat = _chat(s, workspace_id, row.whatsapp_account_id, remote, remote.endswith("@g.us"), provider)
        row.chat_id = chat.id
    ack = message.get("ack")
    in_flight = row.status in (MessageStatus.SENDING, MessageStatus.HANDED)
    if not in_flight and isinstance(ack, int) and ack >= 1 and (row.ack or 0) < ack:
        row.ack, row.status = ack, ACK_STATUS.get(ack, row.status)
    if row.sent_at is None and not in_flight and message.get("t"):
        row.sent_at = _when(message)


def remember_contact(s, workspace_id: int, account_id: int, jid: str, *, lid: str | None = None,
                     phone: str | None = None, push_name: str | None = None) -> Contact:
    """The one contact row for a user reached by LID, phone-number id or both; completed, never duplicated."""
    lid = lid or (jid if jid.endswith("@lid") else None)
    phone = phone or (jid if jid.endswith("@c.us") else None)
    ids = {i for i in (jid, lid, phone) if i}
    match = [Contact.jid.in_(ids)]
    if lid:
        match.append(Contact.lid == lid)
    contact = s.scalars(select(Contact).where(Contact.whatsapp_account_id == account_id, or_(*match))
                        .order_by(Contact.id)).first()
    number = phone.split("@")[0] if phone else None
    e164 = f"+{number}" if number and number.isdigit() else None
    if contact is None:
        contact = Contact(workspace_id=workspace_id, whatsapp_account_id=account_id, jid=jid, lid=lid,
                          phone_number=e164, push_name=push_name)
        s.add(contact)
        s.flush()
        return contact
    if lid and not contact.lid:
        contact.lid = lid
    if e164 and not contact.phone_number:
        contact.phone_number = e164  # WhatsApp revealed the phone of a LID-only contact
    if push_name and contact.push_name != push_name:
        contact.push_name = push_name
    return contact


def _chat(s, workspace_id: int, account_id: int, jid: str, is_group: bool, provider) -> Chat:
    chat = s.scalars(select(Chat).where(Chat.whatsapp_account_id == account_id, Chat.jid == jid)
                     .with_for_update()).first()
    if chat is None:
        chat = Chat(workspace_id=workspace_id, whatsapp_account_id=account_id, jid=jid,
                    chat_type=ChatType.GROUP if is_group else ChatType.PRIVATE,
                    provider_type=provider or ProviderType.WEBJS, unread_count=0)
        s.add(chat)
        s.flush()
    return chat


def _last_message(chat: Chat, kind: str, message: dict, when: datetime) -> None:
    preview = _preview(kind, message)
    chat.last_message_at = when
    chat.last_message = preview[:PREVIEW] if preview else None


def _preview(kind: str, m: dict) -> str | None:
    if m.get("body"):
        return m["body"]
    return {"image": "[image]", "video": "[video]", "audio": "[audio]", "document": "[document]",
            "sticker": "[sticker]", "location": "[location]", "vcard": "[contact]",
            "ciphertext": "[waiting for this message]",
            "reaction": f"[reaction {m.get('reaction') or ''}]".strip()}.get(kind)


def _details(kind: str, m: dict) -> dict | None:
    if kind == "location":
        return {"lat": m.get("lat"), "lng": m.get("lng"), "name": m.get("loc")}
    if kind == "vcard":
        return {"vcards": m.get("vcards") or []}
    if kind == "reaction":
        return {"reaction": m.get("reaction"), "to": m.get("quoted_id")}
    return None


def ack(db: Database, *, owner: str, epoch: int, account_id: int, wa_message_id: str, ack: int) -> bool:
    """Move an outbound message's status forward (never back) from a WhatsApp ack."""
    status = ACK_STATUS.get(ack)
    if status is None:
        return False
    with db.session() as s:
        workspace_id, _provider = _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        m = s.scalars(select(Message).where(Message.whatsapp_account_id == account_id,
                                            Message.wa_message_id == wa_message_id).with_for_update()).first()
        if m is None or m.direction != Direction.OUT or (m.ack is not None and ack <= m.ack and ack != -1):
            return False
        if ack == -1 and m.status == MessageStatus.FAILED:  # the sender recorded the refusal already
            return False
        was_sending = m.status in (MessageStatus.SENDING, MessageStatus.HANDED, MessageStatus.UNKNOWN)
        m.ack = ack
        m.status = status
        if ack == -1:  # what the send result says for it too (the sender may see either first)
            m.error = "send_refused: ERROR"
        if ack >= 1 and m.sent_at is None:
            m.sent_at = db_now()
        if ack >= 2 and m.delivered_at is None:
            m.delivered_at = db_now()
        if ack >= 3 and m.read_at is None:
            m.read_at = db_now()
        s.flush()
        if was_sending and ack >= 1:  # the ack overtook the sender's own "sent" write
            events.record(s, type="message.sent", workspace_id=workspace_id, account_id=account_id, data={
                "message_id": m.id, "uuid": m.uuid, "wa_message_id": wa_message_id, "to": m.chat_jid})
        events.record(s, type="message.status", workspace_id=workspace_id, account_id=account_id, data={
            "message_id": m.id, "uuid": m.uuid, "wa_message_id": wa_message_id, "status": str(status), "ack": ack})
    return True


def _by_page_id(s, account_id: int, wa_message_id: str) -> Message | None:
    """Our row for a message the page names by its serialized id."""
    return s.scalars(select(Message).where(Message.whatsapp_account_id == account_id,
                                           Message.wa_message_id.in_(_ids(wa_message_id))).with_for_update()).first()


def _keep(row: Message, body: str | None, reason: str) -> None:
    """The body being replaced, kept in ``edits`` (a new list: JSON columns do not track in-place changes)."""
    row.edits = [*(row.edits or []), {"body": body, "replaced_at": datetime.now(timezone.utc).isoformat(),
                                      "reason": reason}]


def edit(db: Database, *, owner: str, epoch: int, account_id: int, wa_message_id: str, body: str,
         edited_at: datetime | None = None) -> bool:
    """The author edited a stored message: new body, the previous one kept, ``message.edited``."""
    with db.session() as s:
        _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        row = _by_page_id(s, account_id, wa_message_id)
        if row is None or row.revoked_at is not None or (row.body or "") == (body or ""):
            return False
        if edited_at is not None and row.edited_at is not None and _utc(edited_at) <= _utc(row.edited_at):
            return False  # an older edit arriving late (a spool replayed, a late write): the newer body stays
        previous = row.body
        _keep(row, previous, "edited")
        row.body, row.edited_at = body or None, edited_at or datetime.now(timezone.utc)
        s.flush()
        events.record(s, type="message.edited", workspace_id=row.workspace_id, account_id=account_id, data={
            "message_id": row.id, "uuid": row.uuid, "wa_message_id": row.wa_message_id, "chat_jid": row.chat_jid,
            "direction": str(row.direction), "body": row.body, "previous_body": previous,
            "edited_at": row.edited_at.isoformat()})
    return True


def revoke(db: Database, *, owner: str, epoch: int, account_id: int, wa_message_id: str) -> bool:
    """The author deleted a stored message for everyone: body kept in ``edits``, ``message.revoked``."""
    with db.session() as s:
        _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        row = _by_page_id(s, account_id, wa_message_id)
        if row is None or row.revoked_at is not None:
            return False
        _keep(row, row.body, "revoked")
        row.body, row.revoked_at = None, datetime.now(timezone.utc)
        s.flush()
        events.record(s, type="message.revoked", workspace_id=row.workspace_id, account_id=account_id, data={
            "message_id": row.id, "uuid": row.uuid, "wa_message_id": row.wa_message_id, "chat_jid": row.chat_jid,
            "direction": str(row.direction), "revoked_at": row.revoked_at.isoformat()})
    return True


def join_chat(s, message_id: int) -> None:
    """A message we sent joins (or starts) its chat: the chat row, its last message, the link."""
    row = s.get(Message, message_id)
    if row is None:
        return
    provider = s.scalar(select(WhatsAppAccount.provider_type).where(WhatsAppAccount.id == row.whatsapp_account_id))
    chat = _chat(s, row.workspace_id, row.whatsapp_account_id, row.chat_jid, row.chat_jid.endswith("@g.us"), provider)
    row.chat_id = chat.id
    when = row.sent_at or row.created_at
    if chat.last_message_at is None or chat.last_message_at <= when:
        _last_message(chat, row.type, {"body": row.body}, when)


def mark_read(db: Database, *, owner: str, epoch: int, account_id: int, jid: str) -> None:
    """The chat was read (a receipt went out): its unread count is 0."""
    with db.session() as s:
        _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        s.execute(update(Chat).where(Chat.whatsapp_account_id == account_id, Chat.jid == jid)
                  .values(unread_count=0).execution_options(synchronize_session=False))
