"""The daemon's webhook dispatcher task (see blazzctl.webhooks.dispatcher)."""

from __future__ import annotations

import asyncio
import logging

from blazzctl.db import Database
from blazzctl.settings import Settings
from daemons.session import metrics

log = logging.getLogger("blazz.webhooks")


async def run_dispatcher(db: Database, settings: Settings, daemon_name: str, stopping: asyncio.Event) -> None:
    """Deliver due webhooks until ``stopping`` is set, then drain in-flight attempts and return."""
    if not settings.webhooks.enabled:
        log.info("webhook dispatcher disabled (webhooks.enabled: false)")
        await stopping.wait()
        return
    from blazzctl.webhooks.dispatcher import Dispatcher

    def count(outcome) -> None:
        metrics.webhook_deliveries.labels(outcome=str(outcome.verdict)).inc()

    await Dispatcher(db, settings.webhooks, daemon_name, on_outcome=count).run(stopping)
