"""The fleet at a glance, as the database says now: daemons, accounts by status, queues.

Read by `blazzctl top` (the whole fleet) and by the daemons' metrics (their own accounts and
queues). Every count here is served by an index: accounts by ``owner``, messages through
``ix_messages_outbox`` (account, status), deliveries through ``ix_webhook_deliveries_due``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, DeliveryStatus, MessageStatus, SyncStatus
from blazzctl.models import Message, SyncRun, WebhookDelivery, WhatsAppAccount
from blazzctl.services import daemons

OUTBOUND = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.HANDED)


@dataclass(frozen=True)
class Queues:
    messages_pending: int  # outbound messages pending or sending
    syncs_queued: int
    syncs_running: int
    webhooks_pending: int  # the webhook outbox backlog
    webhooks_oldest_age: float | None  # seconds since the oldest pending delivery was queued
    webhooks_dead: int


@dataclass(frozen=True)
class Overview:
    now: datetime
    daemons: list[daemons.DaemonView]
    accounts: dict[str, int]  # status → accounts (removed ones not counted)
    queues: Queues
    owned: int = 0  # accounts with a live lease


def accounts_by_status(session: Session, *, owner: str | None = None) -> dict[str, int]:
    """{status: count} of live (not removed) accounts; only ``owner``'s when given."""
    query = select(WhatsAppAccount.status, func.count()).where(WhatsAppAccount.deleted_at.is_(None))
    if owner is not None:
        query = query.where(WhatsAppAccount.owner == owner)
    return {str(status): n for status, n in session.execute(query.group_by(WhatsAppAccount.status))}


def accounts_by_wa_version(session: Session) -> dict[str, int]:
    """{WhatsApp Web build: connected accounts whose page runs it} of the whole fleet."""
    return dict(session.execute(select(WhatsAppAccount.wa_version, func.count()).where(
        WhatsAppAccount.deleted_at.is_(None), WhatsAppAccount.status == AccountStatus.CONNECTED,
        WhatsAppAccount.wa_version.is_not(None)).group_by(WhatsAppAccount.wa_version)).all())


def messages_pending(session: Session, *, owner: str | None = None) -> int:
    """Outbound messages not yet handed to WhatsApp (of ``owner``'s accounts when given)."""
    accounts = select(WhatsAppAccount.id)
    if owner is not None:
        accounts = accounts.where(WhatsAppAccount.owner == owner)
    return session.scalar(select(func.count()).select_from(Message).where(
        Message.whatsapp_account_id.in_(accounts), Message.status.in_(OUTBOUND))) or 0


def webhook_backlog(session: Session) -> tuple[int, float | None]:
    """(pending deliveries, age in seconds of the oldest one) across the fleet."""
    count, oldest, now = session.execute(select(func.count(), func.min(WebhookDelivery.created_at), db_now())
                                         .where(WebhookDelivery.status == DeliveryStatus.PENDING)).one()
    if oldest is None:
        return count or 0, None
    if isinstance(oldest, str):  # SQLite returns MIN() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return count, max(0.0, (now - oldest).total_seconds())


def queues(session: Session) -> Queues:
    syncs = dict(session.execute(select(SyncRun.status, func.count()).where(
        SyncRun.status.in_([SyncStatus.QUEUED, SyncStatus.RUNNING])).group_by(SyncRun.status)).all())
    pending, oldest = webhook_backlog(session)
    dead = session.scalar(select(func.count()).select_from(WebhookDelivery)
                          .where(WebhookDelivery.status == DeliveryStatus.DEAD)) or 0
    return Queues(messages_pending=messages_pending(session), syncs_queued=syncs.get(SyncStatus.QUEUED, 0),
                  syncs_running=syncs.get(SyncStatus.RUNNING, 0), webhooks_pending=pending,
                  webhooks_oldest_age=oldest, webhooks_dead=dead)


def snapshot(session: Session, *, heartbeat_interval: float) -> Overview:
    """Everything `blazzctl top` shows, read in one unit of work."""
    owned = session.scalar(select(func.count()).select_from(WhatsAppAccount).where(
        WhatsAppAccount.deleted_at.is_(None), WhatsAppAccount.owner.is_not(None),
        WhatsAppAccount.lease_expires_at > db_now())) or 0
    return Overview(now=daemons.database_time(session),
                    daemons=daemons.list_daemons(session, heartbeat_interval=heartbeat_interval,
                                                 include_stopped=False),
                    accounts=accounts_by_status(session), queues=queues(session), owned=owned)


def as_dict(view: Overview) -> dict:
    """The JSON shape of `blazzctl top --once --json`."""
    from blazzctl import views

    q = view.queues
    return {"time": views.iso(view.now), "daemons": [views.daemon(d) for d in view.daemons],
            "accounts": dict(sorted(view.accounts.items())), "accounts_owned": view.owned,
            "queues": {"messages_pending": q.messages_pending, "syncs_queued": q.syncs_queued,
                       "syncs_running": q.syncs_running, "webhooks_pending": q.webhooks_pending,
                       "webhooks_oldest_age_s": None if q.webhooks_oldest_age is None
                       else round(q.webhooks_oldest_age, 1), "webhooks_dead": q.webhooks_dead}}
