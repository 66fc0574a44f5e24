"""The built-in provider: WhatsApp Web in Chromium, driven by Playwright.

``providers.webjs.accounts_per_browser`` K > 1 (the default): K accounts per Chromium, each in its
own context, logins kept as snapshots (``pool.py``, ``snapshot.py``). K = 1: a Chromium and a
persistent profile directory per account, logins kept as profile archives (``profile.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from pathlib import Path
from typing import Any

from blazzctl import keys
from blazzctl.providers import base as p
from blazzctl.providers.webjs.pool import BrowserPool
from blazzctl.providers.webjs.session import WebjsSession

log = logging.getLogger("blazz.webjs")

# Every flag Chromium gets: Playwright's own defaults are not used (``ignore_default_args``), because
# Chromium keeps only the LAST --disable-features switch, so one of ours would silently cancel
# Playwright's list. These are Playwright's switches that matter on Linux, plus ours: headless
# Chromium as root on a server, no GPU, no background traffic to Google (this network refuses it
# anyway), no first-run UI, small shared memory, one renderer process, a small disk cache.
BASE_FLAGS = [
    # Playwright's defaults (what makes automation reliable: no throttled timers in a hidden page, ...)
    "--disable-field-trial-config", "--disable-background-networking", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--disable-back-forward-cache", "--disable-breakpad",
    "--disable-component-extensions-with-background-pages", "--disable-component-update",
    "--no-default-browser-check", "--disable-default-apps", "--disable-dev-shm-usage", "--disable-extensions",
    "--allow-pre-commit-input", "--disable-hang-monitor", "--disable-ipc-flooding-protection",
    "--disable-popup-blocking", "--disable-prompt-on-repost", "--disable-renderer-backgrounding",
    "--force-color-profile=srgb", "--metrics-recording-only", "--no-first-run", "--password-store=basic",
    "--use-mock-keychain", "--no-service-autorun", "--disable-search-engine-choice-screen", "--disable-sync",
    # ours
    "--disable-gpu", "--disable-quic", "--mute-audio", "--disable-blink-features=AutomationControlled",
    "--renderer-process-limit=1", "--disk-cache-size=1048576",
]
DISABLED_FEATURES = [
    # Playwright's list
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch",
    # ours: background services, and the WebUI pages (omnibox popup, reload button) a headless
    # browser still loads into a renderer: about 40 MB PSS per session (docs/benchmarks.md)
    "Translate", "AutofillServerCommunication", "AcceptCHFrame", "IsolateSandboxedIframes",
    "ProcessPerSiteUpToMainFrameThreshold", "WebUIReloadButton", "WebUIOmniboxPopup", "WebUIOmniboxAimPopup",
]
HEADLESS_FLAGS = ["--headless", "--hide-scrollbars"]
# WhatsApp Web refuses browsers it does not support; a headless UA says "HeadlessChrome".
DEFAULT_USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/138.0.0.0 Safari/537.36")


class WebjsProvider(p.Provider):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sessions: dict[int, WebjsSession] = {}
        self._playwright = None
        self._key: keys.SessionKey | None = None
        per_browser = int(getattr(self.settings, "accounts_per_browser", 1) or 1)
        self.pool = BrowserPool(self, per_browser) if per_browser > 1 else None
        self.snapshot_failures = 0  # pooled logins that could not be snapshotted (each kept its last archive)
        self._watch: asyncio.Task | None = None  # the pool's browser checks

    def flags(self) -> list[str]:
        """Chromium's command line (without the profile and the pipe Playwright talks through)."""
        flags = list(BASE_FLAGS) + (HEADLESS_FLAGS if self.settings.headless else [])
        if os.geteuid() == 0:  # Chromium's sandbox cannot run as root
            flags.append("--no-sandbox")
        disabled = list(DISABLED_FEATURES)
        for arg in self.settings.launch_args:  # merged: a second --disable-features would replace ours
            if str(arg).startswith("--disable-features="):
                disabled += [f for f in str(arg).split("=", 1)[1].split(",") if f and f not in disabled]
            else:
                flags.append(str(arg))
        return flags + ["--disable-features=" + ",".join(disabled)]

    def key(self) -> keys.SessionKey:
        if self._key is None:
            configured = getattr(self.secrets, "session_key_file", None)
            self._key = keys.resolve(configured, self.state_dir.parent)
        return self._key

    async def open(self) -> None:
        from playwright.async_api import async_playwright

        import shutil

        shutil.rmtree(self.state_dir / "browsers", ignore_errors=True)  # pooled browsers' scratch of a crash
        self._playwright = await async_playwright().start()
        if self.pool is not None:
            self._watch = asyncio.create_task(self.pool.watch())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for account_id in list(self.sessions):
            await self.stop(account_id, checkpoint=False)
        if self.pool is not None:
            await self.pool.close()
        if self._playwright is not None:
            await self._playwright.stop()

    def context_options(self) -> dict[str, Any]:
        return {"user_agent": self.settings.user_agent or DEFAULT_USER_AGENT, "viewport": {"width": 1280, "height": 800}}

    async def launch_context(self, profile_dir: Path):
        """A Chromium of its own on a persistent profile (accounts_per_browser 1, or a profile login)."""
        profile_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return await self._playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=self.settings.chromium_path, headless=self.settings.headless,
            ignore_default_args=True,
            args=[*self.flags(), f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank"],
            timeout=self.settings.start_timeout * 1000, **self.context_options())

    async def launch_browser(self) -> tuple[Any, Path]:
        """A Chromium for pooled contexts, and its scratch profile directory: nothing of value is
        kept there (the contexts keep their storage in memory); removed when the browser ends,
        and at the next start after a crash."""
        import shutil
        import tempfile

        base = self.state_dir / "browsers"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        scratch = tempfile.mkdtemp(prefix="pool-", dir=base)
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=self.settings.chromium_path, headless=self.settings.headless, ignore_default_args=True,
                args=[*self.flags(), f"--user-data-dir={scratch}", "--remote-debugging-pipe", "--no-startup-window"],
                timeout=self.settings.start_timeout * 1000)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        # Chromium may still be writing there as its pipe closes: removed a little later.
        browser.on("disconnected", lambda _b: asyncio.get_running_loop().call_later(
            2.0, functools.partial(shutil.rmtree, scratch, ignore_errors=True)))
        return browser, Path(scratch)

    def running(self) -> set[int]:
        return set(self.sessions)

    async def start(self, spec: p.SessionSpec) -> None:
        old = self.sessions.pop(spec.account_id, None)
        if old is not None:
            await old.close(checkpoint=False)
        session = WebjsSession(self, spec)
        self.sessions[spec.account_id] = session
        try:
            await session.launch()
        except Exception:
            self.sessions.pop(spec.account_id, None)
            await session.close(checkpoint=False)
            raise

    async def stop(self, account_id: int, *, checkpoint: bool = True) -> None:
        session = self.sessions.pop(account_id, None)
        if session is not None:
            await session.close(checkpoint=checkpoint)

    async def logout(self, account_id: int) -> None:
        session = self.sessions.pop(account_id, None)
        if session is not None:
            await session.logout()

    def _session(self, account_id: int) -> WebjsSession:
        session = self.sessions.get(account_id)
        if session is None:
            raise p.SessionNotReady(f"account {account_id} has no session in this daemon")
        return session

    async def checkpoint(self, account_id: int) -> bool:
        session = self.sessions.get(account_id)
        if session is None or not session.ready or session.closing:
            return False
        return await session.checkpoint()

    async def set_deadline(self, deadline: float) -> None:
        await asyncio.gather(*(s.push_deadline(deadline) for s in list(self.sessions.values())),
                             return_exceptions=True)

    async def send_message(self, account_id: int, message: dict[str, Any]) -> dict[str, Any]:
        session = self._session(account_id)
        args = {"to": message["to"], "body": message.get("body") or "", "msgId": message.get("msg_id"),
                "quotedId": message.get("quoted_id"), "deadline": message.get("deadline"),
                "media": session.media_payload(message["media"]) if message.get("media") else None}
        try:
            result = await session.call("sendMessage", args)
        except Exception as exc:
            if p.DEADLINE_MARK in str(exc):
                raise p.LeaseDeadline(p.DEADLINE_MARK) from None
            raise
        outcome = (result or {}).get("result")
        if outcome not in (None, "OK"):  # WhatsApp answered, and said no (ack -1)
            raise p.SendRefused(f"send_refused: {outcome}")
        return result

    async def download_media(self, account_id: int, wa_message_id: str) -> tuple[bytes, str | None] | None:
        import base64

        found = await self._session(account_id).call("downloadMedia", wa_message_id, timeout=120)
        return (base64.b64decode(found["data"]), found.get("mimetype")) if found else None

    async def recent_messages(self, account_id: int, since: float) -> list[dict[str, Any]]:
        return await self._session(account_id).call("recentMessages", since, timeout=120)

    async def message_exists(self, account_id: int, wa_message_id: str) -> bool:
        return bool(await self._session(account_id).call("messageExists", wa_message_id))

    async def is_on_whatsapp(self, account_id: int, phone: str) -> bool:
        return bool(await self._session(account_id).call("numberExists", phone))

    async def resolve_number(self, account_id: int, phone: str) -> str | None:
        return await self._session(account_id).call("numberExists", phone) or None

    async def send_seen(self, account_id: int, chat_jid: str) -> None:
        await self._session(account_id).call("sendSeen", chat_jid)

    async def list_chats(self, account_id: int) -> list[dict[str, Any]]:
        return await self._session(account_id).call("listChats", 0, timeout=300)

    async def list_contacts(self, account_id: int) -> list[dict[str, Any]]:
        return await self._session(account_id).call("listContacts", timeout=300)

    async def list_groups(self, account_id: int) -> list[dict[str, Any]]:
        return await self._session(account_id).call("listGroups", timeout=300)
