"""Session daemons as the database sees them: their rows, liveness and figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import DaemonStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import SessionDaemon


@dataclass(frozen=True)
class DaemonView:
    daemon: SessionDaemon
    heartbeat_age: float | None  # seconds, on the database clock
    live: bool


def list_daemons(session: Session, *, heartbeat_interval: float, include_stopped: bool = True) -> list[DaemonView]:
    now = session.scalar(select(db_now()))
    rows = session.scalars(select(SessionDaemon).order_by(SessionDaemon.host, SessionDaemon.instance))
    views = []
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
        live = row.status in (DaemonStatus.STARTING, DaemonStatus.RUNNING, DaemonStatus.DRAINING) and (
            age is not None and age <= 3 * heartbeat_interval)
        if include_stopped or row.status != DaemonStatus.STOPPED:
            views.append(DaemonView(row, age, live))
    return views


def database_time(session: Session) -> datetime:
    return session.scalar(select(db_now()))


def forget(session: Session, *, names: Sequence[str] = (), host: str | None = None,
           heartbeat_interval: float) -> list[str]:
    """Delete the rows of daemons that no longer run (a decommissioned host, a smaller N), by
    name or every one of ``host``. A live daemon is refused: its next heartbeat would find no
    row. Leases are not touched: a dead daemon's leases expire and other daemons claim them."""
    from blazzctl.services import audit

    if not names and not host:
        raise InvalidInput("name the daemons to forget", hint="Give NAME... (host:instance) or --host HOST.")
    chosen = [v for v in list_daemons(session, heartbeat_interval=heartbeat_interval)
              if v.daemon.name in names or v.daemon.host == host]
    missing = sorted(set(names) - {v.daemon.name for v in chosen})
    if missing or not chosen:
        what = ", ".join(missing) if missing else f"on host {host}"
        raise NotFound(f"no session daemon {what}", hint="See `blazzctl daemon list --all`.")
    live = [v for v in chosen if v.live]
    if live:
        ages = ", ".join(f"{v.daemon.name} (heartbeat {v.heartbeat_age:.0f} s ago)" for v in live)
        raise Conflict(f"still running: {ages}; nothing was forgotten",
                       hint="Stop it first (systemctl stop blazz-session@N on its host); a daemon is dead "
                            f"once its heartbeat is older than {3 * heartbeat_interval:g} s.")
    for view in chosen:
        session.delete(view.daemon)
    forgotten = [v.daemon.name for v in chosen]
    audit.record(session, command="daemon forget", target_type="daemon", target=", ".join(forgotten))
    return forgotten
