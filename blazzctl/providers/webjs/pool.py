"""Browsers shared by several accounts: each account in its own context, K accounts per Chromium.

A context is a separate cookie jar, storage and cache inside one browser process: accounts cannot
see each other's storage, and the per-browser processes (browser, zygote, network, storage and
GPU processes: most of a session's memory) are paid once per K accounts instead of once per
account (``../shared/reference/browser-contexts.md``; figures in docs/benchmarks.md). Contexts are
in memory only, so a pooled account's login lives in a snapshot (``snapshot.py``).

A new account goes to the fullest browser that has room (so browsers empty out and close when
accounts leave), else a new browser is launched. A browser that dies takes its contexts with it;
each session sees its context close and is restarted by the daemon, in another browser.

Every ``browser_check_interval`` each browser is checked (``watch``): one that does not answer
within ``browser_hang_timeout`` (stopped, deadlocked, swapping) is killed, so its accounts are
restarted like a crashed browser's; one whose PSS passed ``max_browser_mb`` takes no new account
and is drained, one account at a time, each restarted with its login into another browser
(recycling a leaking browser without a reconnect storm); empty, it closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blazzctl import proctree
from blazzctl.providers import base as p

log = logging.getLogger("blazz.webjs")

MIN_CHECKS_BEFORE_RECYCLING = 10  # a browser younger than this many check intervals is never drained
GONE_AFTER = 15.0  # seconds a drained account may be without a session here before the drain goes on
ASK_AGAIN = 30.0  # seconds between restart requests for an account still in a draining browser


@dataclass(eq=False)
class Slot:
    browser: Any
    scratch: Path  # its profile directory (nothing of value: contexts keep their storage in memory)
    contexts: dict[int, Any] = field(default_factory=dict)  # account id → its context
    started: float = field(default_factory=time.monotonic)
    process: Any = None  # its psutil.Process, found at the first check
    cdp: Any = None  # a CDP session with the browser process (what the hang check asks)
    pss_bytes: int = 0  # as of the last check
    draining: bool = False  # over max_browser_mb: takes no new account, its accounts move out


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
        self.cfg = provider.settings
        self.per_browser = per_browser
        self.slots: list[Slot] = []
        self.killed_hung = 0  # browsers killed because they stopped answering
        self.recycled = 0  # browsers drained because they passed max_browser_mb
        self._lock = asyncio.Lock()  # one choice (and launch) at a time
        self._draining: asyncio.Task | None = None  # one browser drained at a time

    def browsers(self) -> int:
        return len(self.slots)

    async def context_for(self, account_id: int):
        """A fresh context for ``account_id`` in a browser with room (launched when none has)."""
        async with self._lock:
            await self._forget(account_id)
            room = [s for s in self.slots
                    if len(s.contexts) < self.per_browser and not s.draining and s.browser.is_connected()]
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

    # --- checks: hung browsers, memory --------------------------------------------------------

    async def watch(self) -> None:
        """Check every browser each ``browser_check_interval`` until cancelled (``close``)."""
        while True:
            await asyncio.sleep(self.cfg.browser_check_interval)
            for slot in list(self.slots):
                try:
                    await self.check(slot)
                except Exception:  # a check must never end the watch
                    log.exception("browser check failed")

    async def check(self, slot: Slot) -> None:
        if slot not in self.slots:
            return
        if slot.process is None:
            slot.process = await asyncio.to_thread(proctree.browser_process, slot.scratch)
        if not await self._answers(slot):
            if slot in self.slots:
                await self._kill_hung(slot)
            return
        if slot.process is not None:
            slot.pss_bytes = await asyncio.to_thread(proctree.pss, proctree.tree(slot.process))
        limit = self.cfg.max_browser_mb * 1024 * 1024
        old_enough = time.monotonic() - slot.started >= MIN_CHECKS_BEFORE_RECYCLING * self.cfg.browser_check_interval
        if limit and slot.pss_bytes > limit and old_enough and not slot.draining and slot in self.slots \
                and (self._draining is None or self._draining.done()):
            self._draining = asyncio.create_task(self._drain(slot))

    async def _answers(self, slot: Slot) -> bool:
        """False when the browser process does not answer within ``browser_hang_timeout``."""
        timeout = self.cfg.browser_hang_timeout
        try:
            if slot.cdp is None:
                slot.cdp = await asyncio.wait_for(slot.browser.new_browser_cdp_session(), timeout)
            await asyncio.wait_for(slot.cdp.send("Browser.getVersion"), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        except Exception:  # closed meanwhile: its disconnect is handled where it is seen
            return True

    async def _kill_hung(self, slot: Slot) -> None:
        self.killed_hung += 1
        log.error("a pooled browser stopped answering: killed, its accounts restart from their snapshots",
                  extra={"accounts": sorted(slot.contexts), "timeout_s": self.cfg.browser_hang_timeout,
                         "pid": getattr(slot.process, "pid", None)})
        if slot.process is not None:
            await asyncio.to_thread(proctree.kill_tree, slot.process)
        else:  # not found: close what Playwright can (a stopped browser may never answer)
            try:
                await asyncio.wait_for(slot.browser.close(), 5)
            except Exception:
                pass

    async def _drain(self, slot: Slot) -> None:
        """Move a browser's accounts out one at a time: each is restarted by the daemon (its login
        saved first) into another browser; the next goes once it is connected again there."""
        slot.draining = True
        self.recycled += 1
        log.warning("a pooled browser passed max_browser_mb: its accounts move to another browser one by one",
                    extra={"pss_mb": slot.pss_bytes // (1024 * 1024), "max_browser_mb": self.cfg.max_browser_mb,
                           "accounts": sorted(slot.contexts)})
        for account_id in list(slot.contexts):
            if slot not in self.slots:
                return
            if account_id not in slot.contexts:
                continue
            await self._until_moved(slot, account_id)

    async def _until_moved(self, slot: Slot, account_id: int) -> None:
        """Ask for the account's restart, and wait until it is connected in another browser; or it
        stopped running here (its lease went elsewhere) for ``GONE_AFTER`` s; or a start and a
        login's time passed. Asked again every ``ASK_AGAIN`` s while it stays (the daemon restarts
        only a session that is up: one still starting is asked again later)."""
        deadline = time.monotonic() + self.cfg.start_timeout + self.cfg.ready_timeout
        absent_since, asked = None, 0.0
        while time.monotonic() < deadline:
            if account_id in slot.contexts and time.monotonic() - asked >= ASK_AGAIN:
                await self.provider.emit(p.Restart(account_id, reason="browser recycled: over max_browser_mb"))
                asked = time.monotonic()
            session = self.provider.sessions.get(account_id)
            if account_id not in slot.contexts and session is not None and session.ready:
                return
            if session is None:
                absent_since = absent_since or time.monotonic()
                if time.monotonic() - absent_since >= GONE_AFTER:
                    return
            else:
                absent_since = None
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        async with self._lock:
            for slot in list(self.slots):
                self.slots.remove(slot)
                try:
                    await slot.browser.close()
                except Exception:
                    pass
