"""Inbound messages and acks: contact, chat and message stored in one fenced transaction.

A message is stored once: the WhatsApp id is unique per account, and a second delivery of
the same id (WhatsApp redelivers, and our own sends come back through the page) changes
nothing, not even the unread count. The webhook event is queued in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import ChatType, Direction, MessageStatus, ProviderType
from blazzctl.models import Chat, Contact, Message, WhatsAppAccount
from blazzctl.services import events
from daemons.session import metrics
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.inbound")

TYPES = {"chat": "text", "ptt": "audio", "multi_vcard": "vcard"}
ACK_STATUS = {-1: MessageStatus.FAILED, 1: MessageStatus.SENT, 2: MessageStatus.DELIVERED,
              3: MessageStatus.READ, 4: MessageStatus.PLAYED}
PREVIEW = 500


def _hold(s, *, account_id: int, owner: str, epoch: int) -> tuple[int, str]:
    held = s.execute(update(WhatsAppAccount).where(
        WhatsAppAccount.id == account_id, WhatsAppAccount.owner == owner, WhatsAppAccount.lease_epoch == epoch,
    ).values(last_activity_at=db_now()).execution_options(synchronize_session=False)).rowcount
    if held != 1:
        raise LeaseLost(account_id)
    return s.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.provider_type)
                     .where(WhatsAppAccount.id == account_id)).one()


def store(db: Database, *, owner: str, epoch: int, account_id: int, message: dict, settings) -> bool:
    """Store one message from the page; False when it was a duplicate or ignored."""
    remote = message.get("remote") or ""
    wa_id = message.get("id")
    if not wa_id or not remote:
        return False
    if message.get("is_status") and (settings is None or settings.ignore_status_broadcasts):
        return False
    from_me = bool(message.get("from_me"))
    when = datetime.fromtimestamp(message["t"], timezone.utc) if message.get("t") else datetime.now(timezone.utc)
    with db.session() as s:
        workspace_id, provider = _hold(s, account_id=account_id, owner=owner, epoch=epoch)
        if s.scalar(select(Message.id).where(Message.whatsapp_account_id == account_id,
                                             Message.wa_message_id == wa_id)) is not None:
            return False
        is_group = remote.endswith("@g.us")
        sender = message.get("author") if is_group else (message.get("from") if not from_me else None)
        if sender and not from_me:
            _contact(s, workspace_id, account_id, sender, message.get("notify_name"))
        chat = _chat(s, workspace_id, account_id, remote, is_group, provider)
        kind = TYPES.get(message.get("type") or "chat", message.get("type") or "text")
        preview = _preview(kind, message)
        chat.last_message_at = when
        chat.last_message = preview[:PREVIEW] if preview else None
        if not from_me:
            chat.unread_count = (chat.unread_count or 0) + 1
        row = Message(
            workspace_id=workspace_id, whatsapp_account_id=account_id, chat_id=chat.id, chat_jid=remote,
            sender_jid=message.get("author") if is_group else None,
            direction=Direction.OUT if from_me else Direction.IN, type=kind, body=message.get("body") or None,
            media_mimetype=message.get("mimetype"), media_size=message.get("size"),
            media_path=message.get("media_path"),
            media_filename=message.get("filename"), quoted_wa_message_id=message.get("quoted_id"),
            details=_details(kind, message), status=MessageStatus.SENT if from_me else MessageStatus.RECEIVED,
            ack=message.get("ack"), wa_message_id=wa_id, created_at=when, sent_at=when if from_me else None)
        s.add(row)
        s.flush()
        if not from_me:
            events.record(s, type="message.received", workspace_id=workspace_id, account_id=account_id, data={
                "message_id": row.id, "uuid": row.uuid, "wa_message_id": wa_id, "chat_jid": remote,
                "chat_type": "group" if is_group else "private", "from": sender, "type": kind,
                "body": row.body, "timestamp": when.isoformat()})
    if not from_me:  # our own messages from the phone are stored, not received
        metrics.messages_received.inc()
    return True


def _contact(s, workspace_id: int, account_id: int, jid: str, push_name: str | None) -> None:
    contact = s.scalars(select(Contact).where(Contact.whatsapp_account_id == account_id, Contact.jid == jid)).first()
    if contact is None:
        user = jid.split("@")[0]
        s.add(Contact(workspace_id=workspace_id, whatsapp_account_id=account_id, jid=jid, push_name=push_name,
                      phone_number=f"+{user}" if jid.endswith("@c.us") and user.isdigit() else None))
        s.flush()
    elif push_name and contact.push_name != push_name:
        contact.push_name = push_name


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


def _preview(kind: str, m: dict) -> str | None:
    if m.get("body"):
        return m["body"]
    return {"image": "[image]", "video": "[video]", "audio": "[audio]", "document": "[document]",
            "sticker": "[sticker]", "location": "[location]", "vcard": "[contact]",
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
        was_sending = m.status == MessageStatus.SENDING
        m.ack = ack
        m.status = status
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
