"""Session daemons as the database sees them: their rows, liveness and figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import DaemonStatus
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
