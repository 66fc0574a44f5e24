"""A session daemon's own row: its liveness (heartbeat) and what it reports of itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import DaemonStatus
from blazzctl.models.base import Base, IdMixin, enum_column


class SessionDaemon(IdMixin, Base):
    __tablename__ = "session_daemons"

    name: Mapped[str] = mapped_column(String(150), unique=True)  # host:instance
    host: Mapped[str] = mapped_column(String(100))
    instance: Mapped[int]
    pid: Mapped[int | None]
    version: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[DaemonStatus] = enum_column(DaemonStatus, default=DaemonStatus.STARTING)
    status_text: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None] = mapped_column(index=True)
    stopped_at: Mapped[datetime | None]
    capacity: Mapped[int] = mapped_column(default=0)
    accounts_owned: Mapped[int] = mapped_column(default=0)
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger)  # summed RSS of the process tree
    pss_bytes: Mapped[int | None] = mapped_column(BigInteger)  # its PSS: shared pages counted once
    process_count: Mapped[int | None]
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The server's id of the connection the lease work runs on (MySQL/MariaDB): what a live
    # daemon kills when this one, cut off mid-transaction, still holds its accounts' row locks.
    db_connection_id: Mapped[int | None] = mapped_column(BigInteger)
