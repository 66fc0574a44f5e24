"""A fake provider for real daemon processes: a phone that links at once.

Select it with ``providers.webjs.driver: "tests.fakes.provider:FakeProvider"`` (repository
root on PYTHONPATH). Options (``providers.webjs.options``):

- ``link_delay``: seconds from start to ``ready`` (default 0.2)
- ``fail_names``: account names whose login fails (``Failed("fake_failure")``)
- ``crash_names``: account names whose start raises (the daemon retries with backoff)
- ``journal``: a file that gets one JSON line per session start/stop, with the daemon name,
  the lease epoch and the wall time, so tests can check that no two daemons drove one
  account at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from blazzctl.providers import base as p


class FakeProvider(p.Provider):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        opts = dict(getattr(self.settings, "options", {}) or {})
        self.link_delay = float(opts.get("link_delay", 0.2))
        self.fail_names = set(opts.get("fail_names", []))
        self.crash_names = set(opts.get("crash_names", []))
        self.journal = Path(opts["journal"]) if opts.get("journal") else None
        self.live: dict[int, asyncio.Task] = {}
        self.epochs: dict[int, int] = {}

    def running(self) -> set[int]:
        return set(self.live)

    async def start(self, spec: p.SessionSpec) -> None:
        if spec.name in self.crash_names:
            raise RuntimeError("fake browser crashed at launch")
        self.epochs[spec.account_id] = spec.epoch
        self._write("start", spec.account_id)
        self.live[spec.account_id] = asyncio.create_task(self._link(spec))

    async def _link(self, spec: p.SessionSpec) -> None:
        await asyncio.sleep(self.link_delay / 2)
        if spec.name in self.fail_names:
            await self.emit(p.Failed(spec.account_id, reason="fake_failure", detail="the fake phone refused"))
            return
        await self.emit(p.Authenticated(spec.account_id))
        await asyncio.sleep(self.link_delay / 2)
        phone = spec.phone_number or f"+628129{spec.account_id:06d}"
        await self.emit(p.Ready(spec.account_id, phone_number=phone, push_name=f"Fake {spec.name}"))

    async def stop(self, account_id: int, *, checkpoint: bool = True) -> None:
        task = self.live.pop(account_id, None)
        if task is None:
            return
        task.cancel()
        self._write("stop", account_id, checkpoint=checkpoint)

    async def logout(self, account_id: int) -> None:
        await self.stop(account_id, checkpoint=False)
        self._write("logout", account_id)

    async def close(self) -> None:
        for account_id in list(self.live):
            await self.stop(account_id, checkpoint=False)

    def _write(self, event: str, account_id: int, **extra) -> None:
        if self.journal is None:
            return
        line = json.dumps({"event": event, "account_id": account_id, "epoch": self.epochs.get(account_id),
                           "daemon": self.daemon_name, "pid": os.getpid(), "t": time.time(), **extra})
        with open(self.journal, "a", encoding="utf-8") as fh:  # O_APPEND: one line per write
            fh.write(line + "\n")
