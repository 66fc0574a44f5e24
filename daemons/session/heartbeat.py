"""A daemon's own row in ``session_daemons``: birth, heartbeat with process-tree figures, death."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil
from sqlalchemy import select, update

from blazzctl import proctree
from blazzctl.db import Database, db_now
from blazzctl.enums import DaemonStatus
from blazzctl.errors import Conflict
from blazzctl.models import SessionDaemon


# PSS reads /proc/PID/smaps_rollup (~0.5 ms a process, RSS ~0.02 ms): with hundreds of Chromium
# processes a host, it is measured at most this often and the last figure reported between.
PSS_INTERVAL = 30.0


@dataclass(frozen=True)
class TreeStats:
    rss_bytes: int
    pss_bytes: int | None  # shared pages counted once across the tree: what sizes a host
    process_count: int
    cpu_percent: float


class ProcessTree:
    """psutil figures for this process and all its children (Chromium included).

    RSS counts every page a process maps, shared or not: Chromium's processes share most of
    their code, so summed RSS overstates a tree several times over. PSS divides each shared
    page between the processes that map it, so the sum is what the tree really costs.
    """

    def __init__(self, pid: int | None = None, *, pss_interval: float = PSS_INTERVAL) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self._known: dict[int, psutil.Process] = {}
        self.pss_interval = pss_interval
        self._pss: tuple[float, int] | None = None  # (monotonic time measured, bytes)

    def stats(self) -> TreeStats:
        procs = [self.root]
        try:
            procs += self.root.children(recursive=True)
        except psutil.Error:
            pass
        rss = cpu = 0.0
        alive = []
        for proc in procs:
            cached = self._known.setdefault(proc.pid, proc)  # cpu_percent needs the same object
            try:
                with cached.oneshot():
                    rss += cached.memory_info().rss
                    cpu += cached.cpu_percent(None)
                alive.append(cached)
            except psutil.Error:
                self._known.pop(proc.pid, None)
        now = time.monotonic()
        if self._pss is None or now - self._pss[0] >= self.pss_interval:
            self._pss = (now, proctree.pss(alive))
        return TreeStats(int(rss), self._pss[1], len(alive), round(cpu, 1))


def register_birth(db: Database, *, name: str, host: str, instance: int, version: str, capacity: int) -> None:
    """Create or take over this daemon's row; refuse when a live twin runs under the same name."""
    with db.session() as s:
        row = s.scalars(select(SessionDaemon).where(SessionDaemon.name == name).with_for_update()).first()
        if row is not None and _twin_pid(row, host) is not None:
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
              tree: TreeStats, capacity: int | None = None) -> None:
    """Refresh this daemon's row; ``capacity`` is what it can hold now (lower than configured when
    over its memory budget), None to leave it."""
    extra = {} if capacity is None else {"capacity": capacity}
    with db.session() as s:
        s.execute(update(SessionDaemon).where(SessionDaemon.name == name).values(
            **extra, db_connection_id=connection_id(s), heartbeat_at=db_now(), status=status, status_text=status_text[:255], accounts_owned=owned,
            rss_bytes=tree.rss_bytes, pss_bytes=tree.pss_bytes, process_count=tree.process_count, cpu_percent=tree.cpu_percent,
            pid=os.getpid()))


def connection_id(session) -> int | None:
    """The server's id of the connection ``session`` runs on (MySQL/MariaDB: the handshake's
    thread id, which ``CONNECTION_ID()`` and ``KILL`` use), without a query; None on SQLite."""
    thread_id = getattr(session.connection().connection.dbapi_connection, "thread_id", None)
    return thread_id() if callable(thread_id) else None


def register_death(db: Database, *, name: str, error: str | None = None) -> None:
    with db.session() as s:
        s.execute(update(SessionDaemon).where(SessionDaemon.name == name).values(
            status=DaemonStatus.STOPPED, status_text="stopped", accounts_owned=0, stopped_at=db_now(),
            heartbeat_at=db_now(), last_error=error))


def running_twins(db: Database, *, host: str, names: list[str]) -> dict[str, int]:
    """Of ``names``, the daemons already running on this host: ``{name: pid}`` (what birth refuses)."""
    with db.session() as s:
        rows = s.scalars(select(SessionDaemon).where(SessionDaemon.name.in_(names)))
        return {row.name: pid for row in rows if (pid := _twin_pid(row, host)) is not None}


def _twin_pid(row: SessionDaemon, host: str) -> int | None:
    """The pid of a live session daemon (not this process) that holds ``row``'s name on ``host``."""
    if row.status == DaemonStatus.STOPPED or not row.pid or row.pid == os.getpid() or row.host != host:
        return None
    return row.pid if _is_sessiond(row.pid) else None


def _is_sessiond(pid: int) -> bool:
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return "sessiond" in cmdline or "daemons.session" in cmdline
