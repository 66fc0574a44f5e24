"""Outbound messages that will not leave: cancelled by the operator or with their account, or expired.

A message is ``pending`` until its account's daemon sends it. If the account never comes
back, the message must not wait forever, nor be sent days late: after ``messages.pending_ttl``
it fails with error ``expired``. Every status change here is one conditional ``UPDATE ...
WHERE status = 'pending'`` per message, so it races safely with the daemon that moves the
same message to ``sending`` (whichever commits first wins; the other changes nothing), and
with other daemons expiring the same messages (one event per message, from the one that won).

Webhooks: a message the operator cancels (`cancel`, named one by one) and an expired message
each get one ``message.status`` event. Messages cancelled because their account was removed
get none: there may be thousands, and the removal is what happened (docs/webhooks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, DesiredState, MessageStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import Message, MessageMediaChunk, WhatsAppAccount
from blazzctl.services import audit, events

EXPIRED = "expired"
ACCOUNT_REMOVED = "account_removed"
CANCELLED_BY_OPERATOR = "cancelled_by_operator"
CANCELLABLE = (MessageStatus.PENDING, MessageStatus.UNKNOWN)
EXPIRE_BATCH = 500  # messages one pass expires at most (a steady trickle of events, not a flood)
_ACCOUNT_CHUNK = 1000  # account ids per query (IN lists stay short)


def cancel(session: Session, *, account: WhatsAppAccount, refs: list[str]) -> list[Message]:
    """Cancel pending messages of ``account``, all or none.

    ``refs`` are message ids (or uuids). An unknown one (or one of another account) is
    ``NotFound``; one that is no longer pending is a ``Conflict``, naming its status.
    """
    found = _named(session, account, refs, "to cancel", "pending")
    moved = [f"{m.id} ({m.status})" for m in found if m.status not in CANCELLABLE]
    if moved:
        raise Conflict(f"not pending any more, so not cancelled: message {', '.join(moved)}; nothing was cancelled",
                       hint="Only pending messages (and unknown ones) can be cancelled; a message being sent "
                            "cannot be called back.")
    for m in found:
        if not _finish(session, m, MessageStatus.CANCELLED, CANCELLED_BY_OPERATOR, CANCELLABLE):
            # The daemon took it meanwhile: the error rolls the others back too (all or none).
            raise Conflict(f"message {m.id} is being sent now; nothing was cancelled")
    audit.record(session, command="message cancel", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details={"message_ids": [m.id for m in found]})
    for m in found:
        session.refresh(m)
    return found


def _named(session: Session, account: WhatsAppAccount, refs: list[str], purpose: str, status: str) -> list[Message]:
    """The messages ``refs`` (ids or uuids) of ``account``, each once; InvalidInput without any,
    NotFound naming those that are not this account's."""
    if not refs:
        raise InvalidInput(f"give the ids of the messages {purpose}",
                           hint=f"See `blazzctl message list REF --status {status}`.")
    found = [_message_of(session, account, ref) for ref in dict.fromkeys(refs)]
    missing = [ref for ref, m in zip(dict.fromkeys(refs), found) if m is None]
    if missing:
        raise NotFound(f"no message {', '.join(missing)} of account {account.name!r}",
                       hint=f"See `blazzctl message list {account.name} --workspace {account.workspace.name}`.")
    return found


def _message_of(session: Session, account: WhatsAppAccount, ref: str) -> Message | None:
    ref = ref.strip()
    column = Message.id if ref.isdigit() else Message.uuid
    value = int(ref) if ref.isdigit() else ref
    return session.scalars(select(Message).where(column == value,
                                                 Message.whatsapp_account_id == account.id)).first()


def resend(session: Session, *, account: WhatsAppAccount, refs: list[str]) -> list[Message]:
    """Queue ``unknown`` messages of ``account`` again, all or none: the operator decided WhatsApp
    did not get them. Each gets a new WhatsApp id when it is sent (so it is a second message if
    WhatsApp did have the first)."""
    found = _named(session, account, refs, "to send again", "unknown")
    other = [f"{m.id} ({m.status})" for m in found if m.status != MessageStatus.UNKNOWN]
    if other:
        raise Conflict(f"not unknown, so not sent again: message {', '.join(other)}; nothing was queued",
                       hint="Only messages with status unknown can be sent again (a failed one: send it anew).")
    for m in found:
        changed = session.execute(update(Message).where(Message.id == m.id, Message.status == MessageStatus.UNKNOWN)
                                  .values(status=MessageStatus.PENDING, wa_message_id=None, error=None, attempts=0,
                                          next_attempt_at=None).execution_options(synchronize_session=False)).rowcount
        if changed != 1:  # an ack settled it meanwhile: the error rolls the others back too
            raise Conflict(f"message {m.id} was settled meanwhile; nothing was queued")
        events.record(session, type="message.status", workspace_id=m.workspace_id, account_id=m.whatsapp_account_id,
                      data={"message_id": m.id, "uuid": m.uuid, "status": "pending", "error": None})
    audit.record(session, command="message resend", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details={"message_ids": [m.id for m in found]})
    for m in found:
        session.refresh(m)
    return found


def _finish(session: Session, m: Message, status: MessageStatus, error: str,
            was: tuple[MessageStatus, ...] = (MessageStatus.PENDING,)) -> bool:
    """Move one message still in a status of ``was`` to ``status``, with its event; False when it moved on."""
    changed = session.execute(update(Message).where(Message.id == m.id, Message.status.in_(was))
                              .values(status=status, error=error, next_attempt_at=None)
                              .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        return False
    session.execute(delete(MessageMediaChunk).where(MessageMediaChunk.message_id == m.id))
    events.record(session, type="message.status", workspace_id=m.workspace_id, account_id=m.whatsapp_account_id,
                  data={"message_id": m.id, "uuid": m.uuid, "status": str(status), "error": error})
    return True


def expire_one(session: Session, *, message_id: int) -> bool:
    """Fail one pending message as expired (the sender found it overdue); False when it was not pending."""
    m = session.get(Message, message_id)
    return m is not None and _finish(session, m, MessageStatus.FAILED, EXPIRED)


def cancel_all_of_account(session: Session, *, account_id: int) -> int:
    """An account is being removed: cancel its pending messages (no events; see the module doc)."""
    pending = (Message.whatsapp_account_id == account_id, Message.status == MessageStatus.PENDING)
    session.execute(delete(MessageMediaChunk).where(MessageMediaChunk.message_id.in_(
        select(Message.id).where(*pending))))
    return session.execute(update(Message).where(*pending)
                           .values(status=MessageStatus.CANCELLED, error=ACCOUNT_REMOVED, next_attempt_at=None)
                           .execution_options(synchronize_session=False)).rowcount


def expire_overdue(session: Session, *, ttl: float, account_ids: list[int] | None = None,
                   limit: int = EXPIRE_BATCH) -> list[int]:
    """Fail pending messages older than ``ttl`` seconds (error ``expired``); returns their ids.

    Any account's, owned by a daemon or not (``account_ids`` narrows it). The query goes
    account by account through ``ix_messages_outbox`` (account, status): the messages table
    has no index on status alone, and a full scan of it every minute would cost more than
    the accounts' few pending rows.
    """
    if account_ids is None:
        account_ids = list(session.scalars(select(WhatsAppAccount.id)))
    expired: list[int] = []
    for start in range(0, len(account_ids), _ACCOUNT_CHUNK):
        chunk = account_ids[start:start + _ACCOUNT_CHUNK]
        overdue = session.scalars(select(Message).where(
            Message.whatsapp_account_id.in_(chunk), Message.status == MessageStatus.PENDING,
            Message.created_at < db_now(-ttl)).order_by(Message.id).limit(limit - len(expired))).all()
        expired += [m.id for m in overdue if _finish(session, m, MessageStatus.FAILED, EXPIRED)]
        if len(expired) >= limit:
            break
    return expired


@dataclass(frozen=True)
class Waiting:
    """Why a pending message has not left: its account's state."""

    account: str
    status: AccountStatus
    reason: str | None
    desired: DesiredState

    def __str__(self) -> str:
        if self.status == AccountStatus.CONNECTED:
            return f"account {self.account} is connected; the message waits its turn (rate limit, retries)"
        why = f" ({self.reason})" if self.reason else ""
        wanted = "" if self.desired == DesiredState.RUNNING else "; nobody asked to connect it"
        return f"account {self.account} is {self.status}{why}{wanted}"


def why_pending(session: Session, *, message_id: int) -> Waiting:
    row = session.execute(select(WhatsAppAccount.name, WhatsAppAccount.status, WhatsAppAccount.status_reason,
                                 WhatsAppAccount.desired_state)
                          .join(Message, Message.whatsapp_account_id == WhatsAppAccount.id)
                          .where(Message.id == message_id)).one()
    return Waiting(*row)
