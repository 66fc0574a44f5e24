"""Webhook endpoints and their deliveries: what `blazzctl webhook` does."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from blazzctl.db import Database, db_now
from blazzctl.enums import DeliveryStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound, OperationFailed
from blazzctl.models import WebhookDelivery, WebhookEndpoint, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit, events
from blazzctl.webhooks import outbox, signing
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


def same_url_key(url: str) -> str:
    """What makes two URLs the same receiver: scheme and host in any case, an explicit default port."""
    parts = urlsplit(url)
    port = parts.port if parts.port not in (None, {"http": 80, "https": 443}.get(parts.scheme.lower())) else None
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host + (f":{port}" if port else "")
    return parts._replace(scheme=parts.scheme.lower(), netloc=netloc, path=parts.path or "/").geturl()


def parse_events(text: str | None) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]`` (checked); None → None (every event type).

    An empty or blank list is refused rather than read as "every type": that is what
    leaving ``--events`` out means, and ``--events "$TYPES"`` with an unset variable
    should not quietly subscribe to everything.
    """
    if text is None:
        return None
    hint = f"Give a comma-separated list of: {', '.join(events.EVENT_TYPES)}; leave --events out for every type."
    names = [part.strip() for part in text.split(",")]
    if not any(names):
        raise InvalidInput("--events is empty", hint=hint)
    chosen = []
    for name in names:
        if not name:
            raise InvalidInput(f"--events {text!r} has an empty entry", hint=hint)
        if name not in events.EVENT_TYPES:
            raise InvalidInput(f"unknown event type {name!r}", hint=hint)
        if name not in chosen:
            chosen.append(name)
    return chosen


def _refuse_duplicate_url(session: Session, *, workspace_id: int, url: str, other_than: int | None = None) -> None:
    """Conflict when another endpoint of the workspace posts to the same URL.

    The workspace row is locked first, so two concurrent adds cannot both pass the check.
    """
    session.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())
    key = same_url_key(url)
    rows = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.url)
                           .where(WebhookEndpoint.workspace_id == workspace_id))
    for endpoint_id, existing in rows:
        if endpoint_id != other_than and same_url_key(existing) == key:
            raise Conflict(f"webhook {endpoint_id} of this workspace already posts to {shown_url(existing)}",
                           hint=f"Change that one with `blazzctl webhook update {endpoint_id}`, or remove it first.")


def add(session: Session, *, workspace: Workspace, url: str, events: list[str] | None = None,
        secret: str | None = None) -> WebhookEndpoint:
    """Create an endpoint; without ``secret`` a ``whsec_`` secret is generated."""
    url = validate_url(url)
    secret = secret if secret is not None else signing.generate_secret()
    signing.secret_key(secret)  # validates it
    _refuse_duplicate_url(session, workspace_id=workspace.id, url=url)
    endpoint = WebhookEndpoint(workspace_id=workspace.id, url=url, secret=secret, events=events, active=True)
    session.add(endpoint)
    session.flush()
    audit.record(session, command="webhook add", target_type="webhook", target=str(endpoint.id),
                 workspace_id=workspace.id, details={"url": shown_url(url), "events": events})
    return endpoint


ALL_EVENTS = "all"  # ``update(events=ALL_EVENTS)``: subscribe to every type again


def update(session: Session, *, endpoint: WebhookEndpoint, url: str | None = None,
           events: list[str] | str | None = None, active: bool | None = None) -> WebhookEndpoint:
    """Change an endpoint's URL, event types (``ALL_EVENTS`` for every type) or whether it is active.

    Deliveries already queued keep their event but go to the new URL. Disabling gives up the
    pending deliveries (dead, redeliverable); enabling takes new events again.
    """
    if url is None and events is None and active is None:
        raise InvalidInput("nothing to change",
                           hint="Give --url, --events, --all-events, --enable or --disable.")
    changes: dict = {}
    if url is not None:
        url = validate_url(url)
        _refuse_duplicate_url(session, workspace_id=endpoint.workspace_id, url=url, other_than=endpoint.id)
        endpoint.url, changes["url"] = url, shown_url(url)
    if events is not None:
        endpoint.events = None if events == ALL_EVENTS else list(events)
        changes["events"] = endpoint.events
    if active is False and endpoint.active:
        session.flush()  # the refresh below must not drop the changes above
        outbox.disable_endpoint(session, endpoint.id, reason="disabled with webhook update")
        session.refresh(endpoint)
        changes["active"] = False
    elif active is True and not endpoint.active:
        endpoint.active, endpoint.disabled_reason = True, None
        changes["active"] = True
    session.flush()
    audit.record(session, command="webhook update", target_type="webhook", target=str(endpoint.id),
                 workspace_id=endpoint.workspace_id, details=changes)
    return endpoint


def rotate_secret(session: Session, *, endpoint: WebhookEndpoint, grace: float,
                  secret: str | None = None) -> WebhookEndpoint:
    """Give the endpoint a new secret; the current one keeps signing for ``grace`` seconds.

    Meanwhile every delivery carries both signatures. A second rotation within the grace
    drops the oldest secret at once (only the one just replaced stays valid). ``grace`` 0
    revokes the old secret immediately (a leaked secret).
    """
    secret = secret if secret is not None else signing.generate_secret()
    signing.secret_key(secret)  # validates it
    if secret == endpoint.secret:
        raise InvalidInput("the new secret is the current one", hint="Omit --secret to get a new random one.")
    endpoint.previous_secret = endpoint.secret if grace > 0 else None
    endpoint.previous_secret_expires_at = None
    endpoint.secret = secret
    session.flush()
    if grace > 0:  # the database clock, which the dispatchers judge the expiry by
        session.execute(sql_update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id)
                        .values(previous_secret_expires_at=db_now(grace)))
        session.refresh(endpoint)
    audit.record(session, command="webhook rotate-secret", target_type="webhook", target=str(endpoint.id),
                 workspace_id=endpoint.workspace_id, details={"grace_seconds": grace})
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
        session.execute(sql_update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=db_now(), locked_by=None,
            locked_until=None, delivered_at=None).execution_options(synchronize_session=False))
        endpoints = {r.endpoint_id for r in rows}
        session.execute(sql_update(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoints),
                                                      WebhookEndpoint.active.is_(False))
                        .values(active=True, disabled_reason=None).execution_options(synchronize_session=False))
        audit.record(session, command="webhook redeliver", target_type="delivery",
                     target=str(delivery_id) if delivery_id else "dead", details={"count": len(ids)})
    return ids


def queue_test(session: Session, *, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint only."""
    if not endpoint.active:
        raise Conflict(f"webhook {endpoint.id} is disabled ({endpoint.disabled_reason})",
                       hint=f"Enable it with `blazzctl webhook update {endpoint.id} --enable`.")
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
