"""A daemon's own row in ``session_daemons``: birth, heartbeat with process-tree figures, death."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil
from sqlalchemy import select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import DaemonStatus
from blazzctl.errors import Conflict
from blazzctl.models import SessionDaemon


@dataclass(frozen=True)
class TreeStats:
    rss_bytes: int
    process_count: int
    cpu_percent: float


class ProcessTree:
    """psutil figures for this process and all its children (Chromium included)."""

    def __init__(self, pid: int | None = None) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self._known: dict[int, psutil.Process] = {}

    def stats(self) -> TreeStats:
        procs = [self.root]
        try:
            procs += self.root.children(recursive=True)
        except psutil.Error:
            pass
        rss = cpu = 0.0
        alive = 0
        for proc in procs:
            cached = self._known.setdefault(proc.pid, proc)  # cpu_percent needs the same object
            try:
                with cached.oneshot():
                    rss += cached.memory_info().rss
                    cpu += cached.cpu_percent(None)
                alive += 1
            except psutil.Error:
                self._known.pop(proc.pid, None)
        return TreeStats(int(rss), alive, round(cpu, 1))


def register_birth(db: Database, *, name: str, host: str, instance: int, version: str, capacity: int) -> None:
    """Create or take over this daemon's row; refuse when a live twin runs under the same name."""
    with db.session() as s:
        row = s.scalars(select(SessionDaemon).where(SessionDaemon.name == name).with_for_update()).first()
        if row is not None and row.status != DaemonStatus.STOPPED and row.pid and row.pid != os.getpid():
            if row.host == host and _is_sessiond(row.pid):
                raise Conflict(f"session daemon {name} is already running (pid {row.pid})",
                               hint="Stop it first, or start another --instance number.")
        if row is None:
            row = SessionDaemon(name=name, host=host, instance=instance)
            s.add(row)
        row.pid, row.version, row.capacity = os.getpid(), version, capacity
        row.status, row.status_text, row.last_error = DaemonStatus.STARTING, "starting", None
        row.accounts_owned, row.stopped_at = 0, None
        s.flush()
        s.execute(update(SessionDaemon).where(SessionDaemon.name == name)
                  .values(started_at=db_now(), heartbeat_at=db_now()))


def heartbeat(db: Database, *, name: str, status: DaemonStatus, status_text: str, owned: int,
              tree: TreeStats) -> None:
    with db.session() as s:
        s.execute(update(SessionDaemon).where(SessionDaemon.name == name).values(
            heartbeat_at=db_now(), status=status, status_text=status_text[:255], accounts_owned=owned,
            rss_bytes=tree.rss_bytes, process_count=tree.process_count, cpu_percent=tree.cpu_percent,
            pid=os.getpid()))


def register_death(db: Database, *, name: str, error: str | None = None) -> None:
    with db.session() as s:
        s.execute(update(SessionDaemon).where(SessionDaemon.name == name).values(
            status=DaemonStatus.STOPPED, status_text="stopped", accounts_owned=0, stopped_at=db_now(),
            heartbeat_at=db_now(), last_error=error))


def _is_sessiond(pid: int) -> bool:
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return "sessiond" in cmdline or "daemons.session" in cmdline
