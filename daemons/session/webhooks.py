"""The daemon's webhook dispatcher task (see blazzctl.webhooks.dispatcher)."""

from __future__ import annotations

import asyncio
import logging

from blazzctl.db import Database
from blazzctl.settings import Settings

log = logging.getLogger("blazz.webhooks")


async def run_dispatcher(db: Database, settings: Settings, daemon_name: str, stopping: asyncio.Event) -> None:
    """Deliver due webhooks until ``stopping`` is set, then drain in-flight attempts and return."""
    if not settings.webhooks.enabled:
        log.info("webhook dispatcher disabled (webhooks.enabled: false)")
        await stopping.wait()
        return
    from blazzctl.webhooks.dispatcher import Dispatcher

    await Dispatcher(db, settings.webhooks, daemon_name).run(stopping)
