"""The lease protocol on ``whatsapp_accounts``: claim, renew, release, fenced writes.

An account is owned by ``(owner, lease_epoch)`` until ``lease_expires_at``, a time on the
database's clock. Every function here is synchronous SQL run in one short transaction; the
daemon calls them from a worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update

from blazzctl.db import Database, db_now, is_mysql
from blazzctl.enums import DaemonStatus, DesiredState
from blazzctl.models import SessionDaemon, WhatsAppAccount

A = WhatsAppAccount


@dataclass(frozen=True)
class Lease:
    account_id: int
    epoch: int
    desired_state: DesiredState


def claimable():
    """Runnable accounts whose lease is free or expired."""
    return and_(A.desired_state == DesiredState.RUNNING,
                or_(A.lease_expires_at.is_(None), A.lease_expires_at < db_now()))


def claim_query(limit: int):
    """The claim's SELECT; served by ix_whatsapp_accounts_claim without a filesort."""
    return (select(A.id).where(claimable()).order_by(A.lease_expires_at, A.id).limit(limit)
            .with_for_update(skip_locked=True))


def claim(db: Database, *, owner: str, limit: int, ttl: float) -> list[Lease]:
    """Take up to ``limit`` free accounts: owner set, epoch + 1, lease until db now + ttl."""
    if limit <= 0:
        return []
    with db.session() as s:
        ids = list(s.scalars(claim_query(limit)))
        if not ids:
            return []
        s.execute(update(A).where(A.id.in_(ids), claimable())
                  .values(owner=owner, lease_epoch=A.lease_epoch + 1, lease_expires_at=db_now(ttl))
                  .execution_options(synchronize_session=False))
        rows = s.execute(select(A.id, A.lease_epoch, A.desired_state)
                         .where(A.id.in_(ids), A.owner == owner)).all()
    return [Lease(r.id, r.lease_epoch, r.desired_state) for r in rows]


def renew(db: Database, *, owner: str, ttl: float) -> dict[int, Lease]:
    """Extend every lease this owner holds; returns what the database says it holds now."""
    with db.session() as s:
        s.execute(update(A).where(A.owner == owner).values(lease_expires_at=db_now(ttl))
                  .execution_options(synchronize_session=False))
        rows = s.execute(select(A.id, A.lease_epoch, A.desired_state).where(A.owner == owner)).all()
    return {r.id: Lease(r.id, r.lease_epoch, r.desired_state) for r in rows}


def release(db: Database, *, owner: str, leases: dict[int, int]) -> int:
    """Give up leases ``{account_id: epoch}`` so another daemon may claim them at once."""
    released = 0
    if not leases:
        return 0
    with db.session() as s:
        for account_id, epoch in leases.items():
            result = s.execute(update(A).where(A.id == account_id, A.owner == owner, A.lease_epoch == epoch)
                               .values(owner=None, lease_expires_at=None)
                               .execution_options(synchronize_session=False))
            released += result.rowcount
    return released


def release_all(db: Database, *, owner: str) -> int:
    """Drop every lease held under this daemon's name (a previous incarnation's, at birth)."""
    with db.session() as s:
        result = s.execute(update(A).where(A.owner == owner).values(owner=None, lease_expires_at=None)
                           .execution_options(synchronize_session=False))
    return result.rowcount


def fenced_update(session, *, account_id: int, owner: str, epoch: int, values: dict) -> bool:
    """An UPDATE of one owned account that only applies while we still hold its lease.

    False means zero rows changed: the lease is lost and the session must close at once.
    """
    result = session.execute(update(A).where(A.id == account_id, A.owner == owner, A.lease_epoch == epoch)
                             .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def fair_target(db: Database, *, heartbeat_interval: float, capacity: int, owner: str
                ) -> tuple[int, int, int]:
    """(target, runnable accounts, live daemons).

    The target is this daemon's share when the runnable accounts are poured evenly over the live
    daemons, each filled at most to its capacity (``session_daemons.capacity``, which a daemon over
    its memory budget lowers to what it holds): a daemon with room takes what full ones cannot, so
    every runnable account gets an owner while any live daemon has room.
    """
    runnable_q = select(func.count()).select_from(A).where(A.desired_state == DesiredState.RUNNING)
    # One statement (the idle load counts): each live daemon's row carries the runnable count.
    live_q = select(SessionDaemon.name, SessionDaemon.capacity, runnable_q.scalar_subquery()).where(
        SessionDaemon.status.in_([DaemonStatus.STARTING, DaemonStatus.RUNNING]),
        SessionDaemon.heartbeat_at > db_now(-3 * heartbeat_interval))
    with db.read() as s:
        rows = s.execute(live_q).all()
        runnable = rows[0][2] if rows else s.execute(runnable_q).scalar()
    runnable = runnable or 0
    caps = {name: cap for name, cap, _ in rows}
    caps[owner] = capacity  # ours as we know it now (and counted while our row is not yet live)
    level = water_level(runnable, list(caps.values()))
    return min(capacity, level), runnable, len(caps)


def water_level(runnable: int, capacities: list[int]) -> int:
    """The least level L with sum(min(cap, L)) >= runnable (a capacity <= 0 is unknown: unlimited);
    the largest capacity when all of them together hold less than ``runnable``."""
    caps = [c if c > 0 else runnable for c in capacities] or [runnable]
    if sum(caps) <= runnable:
        return max(caps)
    low, high = 0, max(caps)  # sum(min(c, high)) > runnable; find the least level that suffices
    while low < high:
        mid = (low + high) // 2
        if sum(min(c, mid) for c in caps) >= runnable:
            high = mid
        else:
            low = mid + 1
    return low


def unlock_stranded(db: Database, *, ttl: float, heartbeat_interval: float, limit: int = 50) -> list[str]:
    """End the lease connections of dead daemons that still hold row locks on their accounts.

    A daemon cut off from the database in the middle of a lease transaction leaves its row locks
    with the server until the server drops that connection (MariaDB's idle_transaction_timeout,
    which daemons set to about a TTL; MySQL's wait_timeout: hours by default), and the claim's
    SKIP LOCKED passes over those accounts. Evidence required before ``KILL CONNECTION``: the
    account's lease expired more than a TTL ago, its row is locked now, its owner's heartbeat is
    stale, and the connection the owner recorded (``db_connection_id``) is idle on the server for
    more than a TTL (``PROCESSLIST``, which shows a user's own connections without privileges).
    MySQL/MariaDB only; returns the daemons whose connections were ended.
    """
    if not is_mysql(db.engine):
        return []
    D = SessionDaemon
    with db.read() as s:  # a consistent read: not blocked by the locks it looks for
        rows = s.execute(select(A.id, D.name, D.db_connection_id).join(D, D.name == A.owner).where(
            claimable(), A.lease_expires_at < db_now(-ttl), D.db_connection_id.is_not(None),
            or_(D.status == DaemonStatus.STOPPED, D.heartbeat_at < db_now(-3 * heartbeat_interval)))
            .limit(limit)).all()
    if not rows:
        return []
    with db.session() as s:  # the rows nobody holds come back; rolled back at once
        free = set(s.scalars(select(A.id).where(A.id.in_([r.id for r in rows])).with_for_update(skip_locked=True)))
        s.rollback()
    suspects = {r.db_connection_id: r.name for r in rows if r.id not in free}
    ended = []
    with db.engine.connect() as conn:
        for connection_id, name in suspects.items():
            idle = conn.exec_driver_sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s AND COMMAND = 'Sleep' AND TIME > %s",
                (int(connection_id), math.ceil(ttl))).first()
            if idle is not None:
                conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
                ended.append(name)
        conn.rollback()
    return ended


def explain_claim(db: Database, limit: int = 10) -> list[dict]:
    """EXPLAIN of the claim query on MySQL/MariaDB (for tests and the benchmark)."""
    if not is_mysql(db.engine):
        raise ValueError("EXPLAIN of the claim query is checked on MySQL/MariaDB only")
    with db.engine.connect() as conn:
        compiled = claim_query(limit).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        return [dict(r._mapping) for r in conn.exec_driver_sql(f"EXPLAIN {compiled}")]
