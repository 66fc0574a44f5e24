"""Record an event into the webhook outbox, in the caller's transaction.

This is the one call every producer makes (the daemon for account status and QR, the
messaging code for messages and acks, sync for finished runs). It writes one
``webhook_deliveries`` row per active endpoint of the workspace that subscribes to the
event type, in the same transaction as the change that caused it: the event exists if
and only if that change commits (the transactional outbox). Dispatchers deliver later.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import DeliveryStatus
from blazzctl.errors import InvalidInput
from blazzctl.models import WebhookDelivery, WebhookEndpoint, WhatsAppAccount
from blazzctl.models.base import utcnow

EVENT_TYPES = ("account.status", "account.qr", "message.received", "message.sent", "message.status",
               "message.updated", "message.edited", "message.revoked", "sync.finished", "webhook.test",
               "webjs.version")

_deliveries = WebhookDelivery.__table__
_accounts = WhatsAppAccount.__table__


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def record(session: Session, *, type: str, workspace_id: int, account_id: int | None,
           data: dict[str, Any]) -> str | None:
    """Queue event ``type`` for every subscribed endpoint; returns the event id.

    Returns None, and writes nothing, when no active endpoint of the workspace subscribes
    to ``type``: the account's ``event_sequence`` then is not incremented either, so
    accounts without webhooks never take the extra row lock. Sequence numbers are thus
    increasing per account across the events that were queued, not gap-free for one
    endpoint (an endpoint that filters event types sees gaps).
    """
    if type not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {type!r}", hint=f"Use one of {', '.join(EVENT_TYPES)}.")
    endpoints = subscribed_endpoints(session, workspace_id=workspace_id, type=type)
    if not endpoints:
        return None
    return enqueue(session, endpoint_ids=endpoints, type=type, workspace_id=workspace_id,
                   account_id=account_id, data=data)


def subscribed_endpoints(session: Session, *, workspace_id: int, type: str) -> list[int]:
    rows = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(
        WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.active.is_(True)))
    return [endpoint_id for endpoint_id, events in rows if events is None or type in events]


def enqueue(session: Session, *, endpoint_ids: list[int], type: str, workspace_id: int,
            account_id: int | None, data: dict[str, Any]) -> str:
    """Write the outbox rows of one event for the given endpoints (no subscription check)."""
    event_id = new_event_id()
    sequence = next_sequence(session, account_id) if account_id is not None else None
    payload = encode_payload(event_id=event_id, type=type, workspace_id=workspace_id,
                             account_id=account_id, sequence=sequence, data=data)
    now = utcnow()
    session.execute(insert(_deliveries).values(next_attempt_at=db_now()), [
        {"endpoint_id": endpoint_id, "event_id": event_id, "event_type": type, "workspace_id": workspace_id,
         "whatsapp_account_id": account_id, "sequence": sequence, "payload": payload,
         "status": DeliveryStatus.PENDING.value, "attempts": 0, "created_at": now}
        for endpoint_id in endpoint_ids])
    return event_id


def next_sequence(session: Session, account_id: int) -> int:
    """Increment and return the account's event counter (the row stays locked until commit)."""
    session.execute(update(_accounts).where(_accounts.c.id == account_id)
                    .values(event_sequence=_accounts.c.event_sequence + 1))
    value = session.execute(select(_accounts.c.event_sequence).where(_accounts.c.id == account_id)).scalar()
    if value is None:
        raise InvalidInput(f"account {account_id} not found for an event")
    return int(value)


def encode_payload(*, event_id: str, type: str, workspace_id: int, account_id: int | None,
                   sequence: int | None, data: dict[str, Any]) -> str:
    """The exact JSON text that is stored, signed and sent."""
    timestamp = utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"id": event_id, "type": type, "timestamp": timestamp, "workspace_id": workspace_id,
            "whatsapp_account_id": account_id, "sequence": sequence, "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
