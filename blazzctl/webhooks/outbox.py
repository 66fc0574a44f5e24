"""The outbox table as the dispatcher sees it: claim due deliveries, record outcomes.

A claim is one short transaction: select due rows ``FOR UPDATE SKIP LOCKED`` (on SQLite
``BEGIN IMMEDIATE`` already serialises writers, so the same select-then-update is atomic),
then stamp them with the claimer and push ``next_attempt_at`` to the end of the lock
lease. A dispatcher that dies mid-delivery therefore needs no reaper: its rows simply
become due again when the lease ends, and another dispatcher sends them (same
``webhook-id``, so receivers can drop the duplicate). Every outcome is written only
``WHERE locked_by = <this claimer>``: a dispatcher that lost its lease cannot overwrite
the work of the one that took over.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import case, literal, select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import DeliveryStatus
from blazzctl.models import WebhookDelivery, WebhookEndpoint
from blazzctl.models.base import utcnow
from blazzctl.webhooks.retry import Verdict

D = WebhookDelivery.__table__
E = WebhookEndpoint.__table__
PENDING, DELIVERED, DEAD = (s.value for s in (DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD))


@dataclass
class Job:
    """One claimed delivery, with what is needed to send it."""

    id: int
    endpoint_id: int
    event_id: str
    payload: str
    attempts: int  # this attempt's number (1 = the first)
    url: str
    secret: str
    previous_secret: str | None  # a rotated-out secret still in its grace (signs too), else None
    active: bool
    claimed_at: float  # time.monotonic() of the claim


@dataclass
class Outcome:
    """The result of one attempt; ``verdict`` None means "not attempted, give the row back"."""

    id: int
    endpoint_id: int
    verdict: Verdict | None
    delay: float = 0.0
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    duration_ms: int | None = None


def claim(db: Database, *, owner: str, limit: int, lock_seconds: float, per_endpoint: int,
          busy: dict[int, int] | None = None) -> list[Job]:
    """Claim up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per endpoint.

    ``busy`` maps endpoint id to deliveries this claimer already has in flight; saturated
    endpoints are skipped in the query so their backlog never hides other endpoints' rows.
    """
    busy = busy or {}
    skip = [ep for ep, n in busy.items() if n >= per_endpoint]
    with db.read() as session:  # nothing due, the usual idle case: one statement, no locks
        probe = select(D.c.id).where(D.c.status == PENDING, D.c.next_attempt_at <= db_now())
        if skip:
            probe = probe.where(D.c.endpoint_id.not_in(skip))
        if session.execute(probe.limit(1)).first() is None:
            return []
    query = due_query(limit, skip_endpoints=skip)
    with db.session() as session:
        room = dict(busy)
        ids = []
        for delivery_id, endpoint_id in session.execute(query):
            if room.get(endpoint_id, 0) < per_endpoint:
                room[endpoint_id] = room.get(endpoint_id, 0) + 1
                ids.append(delivery_id)
        if not ids:
            return []
        return _take(session, ids, owner=owner, lock_seconds=lock_seconds)


def due_query(limit: int, *, skip_endpoints: list[int] = ()):
    """Due pending rows in time order: a range scan of ix_webhook_deliveries_due, no filesort."""
    query = select(D.c.id, D.c.endpoint_id).where(D.c.status == PENDING, D.c.next_attempt_at <= db_now())
    if skip_endpoints:
        query = query.where(D.c.endpoint_id.not_in(skip_endpoints))
    return query.order_by(D.c.next_attempt_at, D.c.id).limit(limit).with_for_update(skip_locked=True)


def claim_one(db: Database, *, delivery_id: int, owner: str, lock_seconds: float) -> Job | None:
    """Claim one pending, never claimed delivery now (``webhook test``); None if a dispatcher has it."""
    query = select(D.c.id).where(D.c.id == delivery_id, D.c.status == PENDING,
                                 D.c.locked_by.is_(None)).with_for_update()
    with db.session() as session:
        if session.execute(query).first() is None:
            return None
        jobs = _take(session, [delivery_id], owner=owner, lock_seconds=lock_seconds)
    return jobs[0] if jobs else None


def _take(session, ids: list[int], *, owner: str, lock_seconds: float) -> list[Job]:
    session.execute(update(D).where(D.c.id.in_(ids)).values(
        locked_by=owner, locked_until=db_now(lock_seconds), next_attempt_at=db_now(lock_seconds),
        attempts=D.c.attempts + 1))
    # The grace of a rotated-out secret is judged by the database clock, like every lease.
    previous = case((E.c.previous_secret_expires_at > db_now(), E.c.previous_secret), else_=None)
    rows = session.execute(
        select(D.c.id, D.c.endpoint_id, D.c.event_id, D.c.payload, D.c.attempts, E.c.url, E.c.secret,
               previous.label("previous_secret"), E.c.active)
        .join(E, E.c.id == D.c.endpoint_id).where(D.c.id.in_(ids)).order_by(D.c.id))
    now = time.monotonic()
    return [Job(*row[:8], active=bool(row.active), claimed_at=now) for row in rows]


_KIND = {
    Verdict.DELIVERED: {"status": DELIVERED, "delivered_at": db_now()},
    Verdict.RETRY: {"status": PENDING},
    Verdict.DEAD: {"status": DEAD},
    Verdict.GONE: {"status": DEAD},
    None: {"attempts": D.c.attempts - 1, "next_attempt_at": db_now()},  # released, not attempted
}
CHUNK = 500  # outcomes per UPDATE statement


def record_outcomes(db: Database, *, owner: str, outcomes: list[Outcome]) -> None:
    """Write a batch of outcomes in one transaction: one UPDATE per kind of outcome.

    The per-row values (status code, error, snippet, duration, delay) go in ``CASE id``
    expressions, so a batch of hundreds of deliveries costs a few statements, not one each.
    """
    groups: dict[Verdict | None, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.verdict].append(o)
    with db.session() as session:
        for verdict, group in groups.items():
            for start in range(0, len(group), CHUNK):
                session.execute(_update(verdict, group[start:start + CHUNK], owner))
        for endpoint_id in {o.endpoint_id for o in outcomes if o.verdict is Verdict.GONE}:
            disable_endpoint(session, endpoint_id, reason="410 Gone from the receiver")


def _update(verdict: Verdict | None, group: list[Outcome], owner: str):
    values = dict(_KIND[verdict], locked_by=None, locked_until=None)
    if verdict is not None:
        values.update(last_status_code=_per_row(group, lambda o: o.status_code),
                      last_error=_per_row(group, lambda o: o.error[:500] if o.error else None),
                      last_response=_per_row(group, lambda o: o.response[:500] if o.response else None),
                      last_duration_ms=_per_row(group, lambda o: o.duration_ms))
    if verdict is Verdict.RETRY:
        values["next_attempt_at"] = db_now(_per_row(group, lambda o: o.delay))
    # Fenced: only rows this claimer still holds, still pending.
    return (update(D).where(D.c.id.in_([o.id for o in group]), D.c.locked_by == owner, D.c.status == PENDING)
            .values(**values))


def _per_row(group: list[Outcome], value):
    """One bound value when every row has the same, else ``CASE id WHEN … THEN … END``."""
    values = {o.id: value(o) for o in group}
    distinct = set(values.values())
    if len(distinct) == 1:
        return literal(distinct.pop())
    return case(values, value=D.c.id)


def disable_endpoint(session, endpoint_id: int, *, reason: str) -> None:
    """Deactivate an endpoint and give up its pending deliveries (they stay redeliverable)."""
    stamp = utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")
    session.execute(update(E).where(E.c.id == endpoint_id, E.c.active.is_(True))
                    .values(active=False, disabled_reason=f"{reason} at {stamp}"[:255], updated_at=utcnow()))
    session.execute(update(D).where(D.c.endpoint_id == endpoint_id, D.c.status == PENDING,
                                    D.c.locked_by.is_(None))
                    .values(status=DEAD, last_error=f"endpoint disabled: {reason}"[:500]))


def prune(db: Database, *, older_than_days: float, chunk: int = 1000) -> int:
    """Delete delivered rows older than the retention; returns how many (a chunk per transaction).

    Age is ``next_attempt_at`` (the end of the last claim's lease, just after delivery), so the
    due index serves the range: no scan of the whole table.
    """
    deleted = 0
    while True:
        with db.session() as session:
            ids = session.scalars(select(D.c.id).where(
                D.c.status == DELIVERED, D.c.next_attempt_at < db_now(-86400 * older_than_days))
                .order_by(D.c.next_attempt_at).limit(chunk).with_for_update(skip_locked=True)).all()
            if ids:
                session.execute(D.delete().where(D.c.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < chunk:
            return deleted


def forget_expired_secrets(db: Database) -> int:
    """Erase rotated-out secrets whose grace is over (they no longer sign; no need to keep them)."""
    with db.session() as session:
        return session.execute(update(E).where(E.c.previous_secret_expires_at < db_now())
                               .values(previous_secret=None, previous_secret_expires_at=None)).rowcount
