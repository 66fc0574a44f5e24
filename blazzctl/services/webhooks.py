"""Webhook endpoints and their deliveries: what `blazzctl webhook` does."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from blazzctl.db import Database, db_now
from blazzctl.enums import DeliveryStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound, OperationFailed
from blazzctl.models import WebhookDelivery, WebhookEndpoint, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit, events
from blazzctl.webhooks import signing
from blazzctl.webhooks.outbox import Outcome

URL_MAX = 2048


def validate_url(url: str) -> str:
    """An http(s) URL with a host; loopback and private addresses are allowed."""
    hint = "Give an http:// or https:// URL, e.g. https://hooks.example.com/blazz."
    if not url or len(url) > URL_MAX or any(ch.isspace() for ch in url):
        raise InvalidInput(f"{url!r} is not a valid webhook URL", hint=hint)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput(f"{url!r} is not a valid webhook URL", hint=hint) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"webhook URLs must use http or https, not {parts.scheme or 'nothing'!r}", hint=hint)
    if not parts.hostname:
        raise InvalidInput(f"{url!r} has no host", hint=hint)
    return url


def shown_url(url: str) -> str:
    """The URL for audit records: a password in it is replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_events(text: str | None) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]`` (checked); None or empty → None (every event type)."""
    if not text or not text.strip():
        return None
    chosen = []
    for name in (part.strip() for part in text.split(",")):
        if name not in events.EVENT_TYPES:
            raise InvalidInput(f"unknown event type {name!r}", hint=f"Use some of: {', '.join(events.EVENT_TYPES)}.")
        if name not in chosen:
            chosen.append(name)
    return chosen


def add(session: Session, *, workspace: Workspace, url: str, events: list[str] | None = None,
        secret: str | None = None) -> WebhookEndpoint:
    """Create an endpoint; without ``secret`` a ``whsec_`` secret is generated."""
    url = validate_url(url)
    secret = secret if secret is not None else signing.generate_secret()
    signing.secret_key(secret)  # validates it
    endpoint = WebhookEndpoint(workspace_id=workspace.id, url=url, secret=secret, events=events, active=True)
    session.add(endpoint)
    session.flush()
    audit.record(session, command="webhook add", target_type="webhook", target=str(endpoint.id),
                 workspace_id=workspace.id, details={"url": shown_url(url), "events": events})
    return endpoint


def list_endpoints(session: Session, *, workspace: Workspace | None = None) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if workspace is not None:
        query = query.where(WebhookEndpoint.workspace_id == workspace.id)
    return list(session.scalars(query))


def get(session: Session, ref: str | int) -> WebhookEndpoint:
    """An endpoint by id."""
    found = session.get(WebhookEndpoint, int(ref)) if str(ref).isdigit() else None
    if found is None:
        raise NotFound(f"webhook {ref!r} not found", hint="See `blazzctl webhook list`.")
    return found


def remove(session: Session, *, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its deliveries."""
    audit.record(session, command="webhook remove", target_type="webhook", target=str(endpoint.id),
                 workspace_id=endpoint.workspace_id, details={"url": shown_url(endpoint.url)})
    session.delete(endpoint)


def list_deliveries(session: Session, *, status: str | None = None, endpoint_id: int | None = None,
                    limit: int = 50) -> list[WebhookDelivery]:
    """The newest deliveries first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status is not None:
        if status not in {s.value for s in DeliveryStatus}:
            raise InvalidInput(f"unknown delivery status {status!r}", hint="Use pending, delivered or dead.")
        query = query.where(WebhookDelivery.status == status)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(session.scalars(query))


def redeliver(session: Session, *, delivery_id: int | None = None, dead: bool = False,
              endpoint_id: int | None = None) -> list[int]:
    """Queue deliveries again from their first attempt; returns their ids.

    One delivery by id (any status), or every dead one (of one endpoint when given).
    A disabled endpoint is re-enabled: asking for a redelivery says the receiver is back.
    """
    if (delivery_id is None) == (not dead):
        raise InvalidInput("give a delivery id or --dead", hint="e.g. blazzctl webhook redeliver --dead --endpoint 3")
    query = select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.id == delivery_id)
    else:
        query = query.where(WebhookDelivery.status == DeliveryStatus.DEAD)
        if endpoint_id is not None:
            get(session, endpoint_id)
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    rows = session.execute(query.with_for_update()).all()
    if delivery_id is not None and not rows:
        raise NotFound(f"delivery {delivery_id} not found", hint="See `blazzctl webhook deliveries`.")
    ids = [r.id for r in rows]
    if ids:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=db_now(), locked_by=None,
            locked_until=None, delivered_at=None).execution_options(synchronize_session=False))
        endpoints = {r.endpoint_id for r in rows}
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoints),
                                                      WebhookEndpoint.active.is_(False))
                        .values(active=True, disabled_reason=None).execution_options(synchronize_session=False))
        audit.record(session, command="webhook redeliver", target_type="delivery",
                     target=str(delivery_id) if delivery_id else "dead", details={"count": len(ids)})
    return ids


def queue_test(session: Session, *, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint only."""
    if not endpoint.active:
        raise Conflict(f"webhook {endpoint.id} is disabled ({endpoint.disabled_reason})",
                       hint="Redeliver one of its deliveries to re-enable it, or add it again.")
    event_id = events.enqueue(session, endpoint_ids=[endpoint.id], type="webhook.test",
                              workspace_id=endpoint.workspace_id, account_id=None,
                              data={"webhook_id": endpoint.id, "message": "test event from blazzctl",
                                    "sent_at": utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")})
    return session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).one()


def test(db: Database, settings, *, endpoint_ref: str):
    """Send a ``webhook.test`` event now; returns ``(delivery, outcome)``.

    The event goes through the outbox like any other: if this attempt fails, the
    dispatchers retry it on the schedule.
    """
    from blazzctl.webhooks.dispatcher import deliver_one, lock_seconds

    with db.session() as session:
        delivery_id = queue_test(session, endpoint=get(session, endpoint_ref)).id
    owner = f"blazzctl@{socket.gethostname()}:{os.getpid()}"
    outcome = asyncio.run(deliver_one(db, settings.webhooks, delivery_id=delivery_id, owner=owner))
    if outcome is None:  # a session daemon claimed it first: report its attempt
        return _await_attempt(db, delivery_id, timeout=lock_seconds(settings.webhooks))
    with db.session() as session:
        return session.get(WebhookDelivery, delivery_id), outcome


def _await_attempt(db: Database, delivery_id: int, *, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            row = session.get(WebhookDelivery, delivery_id)
            if row is None:
                raise NotFound(f"delivery {delivery_id} disappeared (its webhook was removed)")
            if row.locked_by is None and row.attempts > 0:
                return row, Outcome(row.id, row.endpoint_id, None, status_code=row.last_status_code,
                                    error=row.last_error, response=row.last_response,
                                    duration_ms=row.last_duration_ms)
        time.sleep(0.2)
    raise OperationFailed("a session daemon took the test delivery and has not finished it",
                          hint=f"See `blazzctl webhook deliveries --endpoint {row.endpoint_id}`.")
