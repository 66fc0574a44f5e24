"""Browsers shared by several accounts: each account in its own context, K accounts per Chromium.

A context is a separate cookie jar, storage and cache inside one browser process: accounts cannot
see each other's storage, and the per-browser processes (browser, zygote, network, storage and
GPU processes: most of a session's memory) are paid once per K accounts instead of once per
account (``../shared/reference/browser-contexts.md``; figures in docs/benchmarks.md). Contexts are
in memory only, so a pooled account's login lives in a snapshot (``snapshot.py``).

A new account goes to the fullest browser that has room (so browsers empty out and close when
accounts leave), else a new browser is launched. A browser that dies takes its contexts with it;
each session sees its context close and is restarted by the daemon, in another browser.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("blazz.webjs")


@dataclass(eq=False)
class Slot:
    browser: Any
    scratch: Path  # its profile directory (nothing of value: contexts keep their storage in memory)
    contexts: dict[int, Any] = field(default_factory=dict)  # account id → its context


def blocking(types):
    """A route handler that aborts requests of the given resource types (images, fonts, media a
    session never shows) and lets every other request through to the next handler or the network.
    Media messages are fetched and uploaded with fetch/XHR, which this leaves alone."""
    blocked = frozenset(types)

    async def handle(route) -> None:
        if route.request.resource_type in blocked:
            await route.abort("blockedbyclient")
        else:
            await route.fallback()

    return handle


class BrowserPool:
    def __init__(self, provider, per_browser: int) -> None:
        self.provider = provider
        self.per_browser = per_browser
        self.slots: list[Slot] = []
        self._lock = asyncio.Lock()  # one choice (and launch) at a time

    def browsers(self) -> int:
        return len(self.slots)

    async def context_for(self, account_id: int):
        """A fresh context for ``account_id`` in a browser with room (launched when none has)."""
        async with self._lock:
            await self._forget(account_id)
            room = [s for s in self.slots if len(s.contexts) < self.per_browser and s.browser.is_connected()]
            slot = max(room, key=lambda s: len(s.contexts)) if room else await self._launch()
            context = await slot.browser.new_context(**self.provider.context_options())
            slot.contexts[account_id] = context
            return context

    async def _launch(self) -> Slot:
        browser, scratch = await self.provider.launch_browser()
        slot = Slot(browser, scratch)
        self.slots.append(slot)
        browser.on("disconnected", lambda _b: self._gone(slot))
        log.info("browser started", extra={"browsers": len(self.slots), "accounts_per_browser": self.per_browser})
        return slot

    def _gone(self, slot: Slot) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
            if slot.contexts:
                log.warning("a pooled browser went away with its accounts",
                            extra={"accounts": sorted(slot.contexts)})

    async def release(self, account_id: int) -> None:
        """Close the account's context; a browser left with no account is closed too."""
        async with self._lock:
            await self._forget(account_id)

    async def _forget(self, account_id: int) -> None:
        for slot in list(self.slots):
            context = slot.contexts.pop(account_id, None)
            if context is None:
                continue
            try:
                await context.close()
            except Exception:  # the browser is gone already
                pass
            if not slot.contexts:
                self.slots.remove(slot)
                try:
                    await slot.browser.close()
                except Exception:
                    pass

    async def close(self) -> None:
        async with self._lock:
            for slot in list(self.slots):
                self.slots.remove(slot)
                try:
                    await slot.browser.close()
                except Exception:
                    pass
