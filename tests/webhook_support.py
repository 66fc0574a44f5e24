"""Helpers of the webhook tests: rows, and a dispatcher running in a background thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from blazzctl.db import Database
from blazzctl.models import WebhookDelivery
from blazzctl.services import accounts, webhooks, workspaces
from blazzctl.settings import WebhooksSettings
from blazzctl.webhooks.dispatcher import Dispatcher

FAST = dict(retry_schedule=[0.1] * 10, timeout=2.0, poll_interval=0.05, concurrency_per_endpoint=4, batch_size=50)


def fast_settings(**overrides) -> WebhooksSettings:
    return WebhooksSettings(**{**FAST, **overrides})


def workspace_with_account(db: Database, name: str = "acme") -> tuple[int, int]:
    with db.session() as session:
        ws = workspaces.create(session, name=name)
        acc = accounts.add(session, workspace=ws, name=f"{name}-sales")
        return ws.id, acc.id


def add_endpoint(db: Database, workspace_id: int, url: str, events: list[str] | None = None) -> tuple[int, str]:
    with db.session() as session:
        ws = workspaces.list_all(session)
        ws = next(w for w in ws if w.id == workspace_id)
        ep = webhooks.add(session, workspace=ws, url=url, events=events)
        return ep.id, ep.secret


def count(db: Database, **where) -> int:
    with db.session() as session:
        query = select(func.count()).select_from(WebhookDelivery)
        for key, value in where.items():
            query = query.where(getattr(WebhookDelivery, key) == value)
        return session.scalar(query)


class DispatcherThread:
    """``with DispatcherThread(db, settings):`` runs a Dispatcher until the block ends."""

    def __init__(self, db: Database, settings: WebhooksSettings, name: str = "test:1") -> None:
        self.dispatcher = Dispatcher(db, settings, name)
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stopping = asyncio.Event()
            self._started.set()
            await self.dispatcher.run(self.stopping)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by __exit__
            self.error = exc
        finally:
            self._started.set()

    def __enter__(self) -> "DispatcherThread":
        self.thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self.stopping is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(60)
        assert not self.thread.is_alive(), "dispatcher did not stop"
        if self.error is not None and exc[0] is None:
            raise self.error


def wait_until(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# A dispatcher process as the daemon runs it: `python -c CHILD NAME` (crash tests, bench/webhooks.py).
CHILD = """
import asyncio, signal, sys
from blazzctl.db import Database
from blazzctl.settings import load_settings
from daemons.session.webhooks import run_dispatcher

async def main():
    settings = load_settings()
    db = Database.from_settings(settings)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await run_dispatcher(db, settings, sys.argv[1], stopping)

asyncio.run(main())
"""
