"""Inbound writes the database could not take yet, kept on local disk until it does.

WhatsApp Web acknowledges a message to WhatsApp as soon as the page has it: an event the
daemon then fails to store is never delivered again. So a write that fails (the database
restarting, a lost connection, a lock wait timeout) is spooled: one file per event under
``<state base>/spool/<account id>/``, written to a temporary name, fsync'd, renamed, and the
directory fsync'd, so it survives a crash or power loss. The spool is shared by the daemons of
a host, and any of them replays its events in order (at start and until the database takes
them): fenced by the lease when it owns the account, else as a late write, since WhatsApp will
not deliver them again to whoever owns the account now. The inbound writes are idempotent (one
row per WhatsApp id; acks only move forward), so a replay after a write that did commit, or two
daemons replaying one file, change nothing.

Values that JSON lacks (media bytes, datetimes) are tagged: ``{"$b64": ...}``, ``{"$dt": ...}``.
``InboundWrites`` is the daemon's side: write now or spool, and replay.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from blazzctl.db import retrying
from daemons.session import inbound, metrics
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.spool")

_seq = itertools.count()


@dataclass(frozen=True)
class Entry:
    path: Path
    account_id: int
    op: str  # store, edit, revoke, ack (daemons.session.inbound)
    args: dict[str, Any]


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def put(self, account_id: int, op: str, args: dict[str, Any]) -> Path:
        """Write one event durably; returns its file (pass it to ``done`` once stored)."""
        folder = self.directory / str(account_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):08d}.json"
        data = json.dumps({"op": op, "account_id": account_id, "args": args}, default=_encode).encode()
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        path = folder / name
        os.rename(tmp, path)
        _fsync_dir(folder)
        return path

    def done(self, entry: Entry | Path) -> None:
        path = entry.path if isinstance(entry, Entry) else entry
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def accounts(self) -> list[int]:
        """Accounts with spooled events."""
        try:
            return sorted(int(p.name) for p in self.directory.iterdir()
                          if p.name.isdigit() and any(_names(p)))
        except FileNotFoundError:
            return []

    def pending(self, account_id: int) -> list[Entry]:
        """One account's spooled events, oldest first (unreadable files are set aside, not lost)."""
        folder = self.directory / str(account_id)
        entries = []
        for name in sorted(_names(folder)):
            path = folder / name
            try:
                raw = json.loads(path.read_bytes(), object_hook=_decode)
                entries.append(Entry(path, int(raw["account_id"]), raw["op"], raw["args"]))
            except FileNotFoundError:  # replayed meanwhile by another daemon of this host
                continue
            except (OSError, ValueError, KeyError) as exc:
                log.error("unreadable spool file set aside", extra={"path": str(path), "error": str(exc)[:200]})
                path.rename(path.with_suffix(".bad"))
        return entries

    def __len__(self) -> int:
        return sum(len(list(_names(self.directory / str(a)))) for a in self.accounts())


def _names(folder: Path):
    try:
        return (n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return iter(())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _decode(obj: dict):
    if len(obj) == 1:
        if "$b64" in obj:
            return base64.b64decode(obj["$b64"])
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
    return obj


SPOOL_RETRY = 0.25  # seconds before retrying spooled inbound writes, doubling ...
SPOOL_IDLE = 5.0  # ... up to this; and how often a spool with events of accounts not ours is looked at


class InboundWrites:
    """Inbound writes (``inbound.store/edit/revoke/ack``) stored now, or spooled until the
    database takes them, and the replay of the spool for the accounts this daemon owns."""

    def __init__(self, db, owner: str, messages, spool: Spool | None) -> None:
        self.db = db
        self.owner = owner
        self.messages = messages  # MessagesSettings (inbound.store takes them)
        self.spool = spool  # None: no spooling (a failed write raises)
        self._spooled: set[int] = set()  # accounts with events in the spool
        self._wake = asyncio.Event()

    async def write(self, owned, op: str, **args) -> bool | None:
        """One inbound write for ``owned`` (an ``Owned``); None when it was spooled instead.

        The page has already acknowledged the event to WhatsApp, so a failed write must not drop
        it: it goes to the spool (fsync'd) and ``loop`` retries it (fenced while we hold the
        lease, as a late write after). A write the lease fence refuses is stored late, then
        ``LeaseLost`` is raised for the caller to close the session.
        While an account has spooled events, its new ones queue behind them (an ack never
        overtakes the message it acknowledges)."""
        a = owned.account_id
        if self.spool is None:
            return await asyncio.to_thread(self._write, op, a, owned.epoch, args)
        if a not in self._spooled:
            try:
                return await asyncio.to_thread(self._write, op, a, owned.epoch, args)
            except LeaseLost:  # stored all the same (the page has it), then the session goes
                await self.late(a, op, args)
                raise
            except Exception as exc:
                log.warning("inbound write failed: spooled until the database takes it",
                            extra={"account_id": a, "op": op, "error": str(exc).splitlines()[0][:200]})
        return await self._put(a, op, args)

    async def late(self, account_id: int, op: str, args: dict) -> bool | None:
        """An inbound event of a page whose lease is gone or going (lost meanwhile, released
        while the browser closes): stored without the fence, since WhatsApp will not deliver it
        again, or spooled when the database is away. None when spooled."""
        log.info("inbound event stored after the lease moved on", extra={"account_id": account_id, "op": op})
        if self.spool is None or account_id not in self._spooled:
            try:
                return await asyncio.to_thread(self._write, op, account_id, None, args)
            except Exception as exc:
                if self.spool is None:
                    raise
                log.warning("inbound write failed: spooled until the database takes it",
                            extra={"account_id": account_id, "op": op, "error": str(exc).splitlines()[0][:200]})
        return await self._put(account_id, op, args)

    async def _put(self, a: int, op: str, args: dict) -> None:
        await asyncio.to_thread(self.spool.put, a, op, args)
        self._spooled.add(a)
        metrics.inbound_spooled.inc()
        self._wake.set()
        return None

    def _write(self, op: str, account_id: int, epoch: int | None, args: dict):
        write = {"store": inbound.store, "edit": inbound.edit, "revoke": inbound.revoke, "ack": inbound.ack}[op]
        extra = {"settings": self.messages} if op == "store" else {}
        return retrying(write, self.db, owner=self.owner, epoch=epoch, account_id=account_id, **args, **extra)

    async def loop(self, sessions, stopping: asyncio.Event) -> None:
        """Replay spooled events of the accounts ``sessions`` owns, oldest first, until none is left."""
        if self.spool is None:
            return
        self._spooled.update(await asyncio.to_thread(self.spool.accounts))  # left by an earlier run
        delay = SPOOL_RETRY
        while not stopping.is_set():
            self._wake.clear()
            try:
                clean = await self.replay(sessions)
            except Exception as exc:
                log.warning("spool replay failed", extra={"error": str(exc)[:200]})
                clean = False
            if clean:
                delay = SPOOL_RETRY
                timeout = SPOOL_IDLE if self._spooled else 60.0
            else:
                timeout, delay = delay, min(SPOOL_IDLE, delay * 2)
            waits = [asyncio.ensure_future(stopping.wait())]
            if clean:  # a new spooled event wakes the replay at once; after a failure it backs off
                waits.append(asyncio.ensure_future(self._wake.wait()))
            _done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()

    async def replay(self, sessions) -> bool:
        """One pass; False when the database still refuses (the caller backs off)."""
        for a in list(self._spooled):
            owned = sessions.owned.get(a)
            # Ours: fenced by our lease. Not ours (any more): a late write; what our page
            # acknowledged to WhatsApp is stored whoever drives the account now.
            epoch = owned.epoch if owned is not None and owned.state != "stopping" else None
            for entry in await asyncio.to_thread(self.spool.pending, a):
                try:
                    await asyncio.to_thread(self._write, entry.op, a, epoch, entry.args)
                except LeaseLost:
                    await sessions.lose(a)
                    break
                except Exception as exc:
                    log.warning("spooled inbound write failed again; retrying",
                                extra={"account_id": a, "op": entry.op, "error": str(exc).splitlines()[0][:200]})
                    return False
                await asyncio.to_thread(self.spool.done, entry)
                metrics.inbound_replayed.inc()
            else:
                if not await asyncio.to_thread(self.spool.pending, a):
                    self._spooled.discard(a)
                    log.info("spooled inbound events stored", extra={"account_id": a})
        return True
