"""One account's WhatsApp Web session: a Chromium context, the bridge, its states.

States are read from the page through the bridge (``bridge.js``) and turned into provider
events. The login travels between hosts as an encrypted archive: a snapshot of the page's
storage for a context in a pooled browser (``snapshot.py``), or the login folders of a
persistent profile when the account has a Chromium of its own (``profile.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import mimetypes
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blazzctl.errors import BlazzError
from blazzctl.providers import base as p
from blazzctl.providers.webjs import profile, snapshot
from blazzctl.providers.webjs.login import Login
from blazzctl.providers.webjs.pool import blocking
from blazzctl.services import auth_archives as archives

if TYPE_CHECKING:
    from blazzctl.providers.webjs.provider import WebjsProvider

log = logging.getLogger("blazz.webjs")

BRIDGE = (Path(__file__).parent / "bridge.js").read_text(encoding="utf-8")
NEEDS_LOGIN = {"UNPAIRED", "UNPAIRED_IDLE"}
FATAL_STATES = {"DEPRECATED_VERSION", "TOS_BLOCK", "SMB_TOS_BLOCK", "PROXYBLOCK"}


class WebjsSession:
    def __init__(self, provider: WebjsProvider, spec: p.SessionSpec) -> None:
        self.provider = provider
        self.spec = spec
        self.cfg = provider.settings
        self.profile = provider.state_dir / "profiles" / spec.session_id
        self.context = None
        self.page = None
        self.login = Login(self)
        self.closing = False
        self.loaded = False
        self.ready = False
        self.logged_out = False  # the phone unlinked us: the profile's login is dead, delete it on close
        self.qr_count = 0
        self.wa_version: str | None = None
        self.last_state: str | None = None
        self.loading_since: float | None = None  # monotonic time the page left the login screens
        self.last_qr_at: float | None = None
        self.qr_lifetime = 20.0
        self.tasks: set[asyncio.Task] = set()
        self.undecrypted: set[str] = set()  # ids reported as ciphertext and not decrypted yet
        self._messages = asyncio.Lock()  # message events reach the daemon one at a time, in order
        self._launched: asyncio.Event | None = None  # set when launch() is over; close() waits for it
        self._document: asyncio.Future | None = None  # the body of the live app document the page loaded
        self._reported: tuple[str, asyncio.Future] | None = None  # the build last reported to the daemon

    @property
    def account_id(self) -> int:
        return self.spec.account_id

    @property
    def pooled(self) -> bool:
        return self.login.pooled

    async def emit(self, event: p.ProviderEvent) -> None:
        if not self.closing:
            await self.provider.emit(event)

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- launch ---------------------------------------------------------------------------

    async def launch(self) -> None:
        self._launched = asyncio.Event()
        try:
            await self._launch()
        finally:
            self._launched.set()

    async def _launch(self) -> None:
        try:
            await asyncio.to_thread(self.login.prepare)
        except archives.ArchiveError as exc:
            await self.emit(p.Failed(self.account_id, reason=exc.reason, detail=exc.detail))
            return
        except BlazzError as exc:  # the session key is missing or unreadable
            await self.emit(p.Failed(self.account_id, reason="session_key_unavailable", detail=str(exc)))
            return
        if self.closing:  # stopped while restoring: start no browser
            return
        if self.pooled:
            self.context = await self.provider.pool.context_for(self.account_id)
        else:
            removed = profile.remove_locks(self.profile)
            if removed:
                log.info("removed stale Chromium locks", extra={"account_id": self.account_id, "files": removed})
            self.context = await self.provider.launch_context(self.profile)
        if self.closing:  # stopped while Chromium was starting: close(), waiting for us, closes it
            return
        await snapshot.install(self.context)  # first: keys the app makes from now on can be snapshotted
        if self.cfg.block_resources:
            await self.context.route("**/*", blocking(self.cfg.block_resources))
        if self.spec.wa_document is not None:  # a pinned (or canary) build: its stored app document
            await self.context.route(lambda url: url == self.cfg.url, self._serve_document)
        await self.context.add_init_script(f"window.__blazzOptions = {json.dumps(self._page_options())};")
        await self.context.add_init_script(BRIDGE)
        await self.context.expose_binding("blazzEmit", self._on_binding)
        self.context.on("close", lambda _ctx: self._on_closed("the browser closed unexpectedly"))
        self.page = self.context.pages[0] if self.context.pages else await self.context.new_page()
        self.page.on("crash", lambda _page: self._on_closed("the page crashed"))
        if self.spec.wa_document is None:
            self.page.on("response", self._on_response)
        if self.login.restoring is not None:
            data, self.login.restoring = self.login.restoring, None
            try:
                await snapshot.restore(self.context, self.cfg.url, data, page=self.page)
            except snapshot.SnapshotError as exc:  # the page could not take it now (checked in prepare)
                await self.emit(p.Disconnected(self.account_id, reason=f"restoring the login failed: {exc}",
                                               retry=True))
                return
        if not self.closing:
            self.spawn(self._navigate())

    def _page_options(self) -> dict:
        return {"pairPhone": self.spec.pair_phone.lstrip("+") if self.spec.pair_phone else None}

    async def _navigate(self) -> None:
        timeout = self.cfg.start_timeout
        try:
            await self.page.goto(self.cfg.url, wait_until="load", timeout=timeout * 1000,
                                 referer="https://whatsapp.com/")
        except Exception as exc:
            if not self.closing:
                await self.emit(p.Disconnected(self.account_id, reason=f"cannot load {self.cfg.url}: "
                                                                        f"{p.first_line(exc)}", retry=True))
            return
        deadline = time.monotonic() + timeout
        while not self.loaded and not self.closing and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        if not self.loaded and not self.closing:
            await self.emit(p.Disconnected(self.account_id, reason="page stuck loading: WhatsApp Web did not "
                                                                    f"start within {timeout:g} s", retry=True))

    # --- the app document (WhatsApp Web releases: blazzctl/services/wa_versions.py) ----------

    async def _serve_document(self, route) -> None:
        """Answer the app's document request with the stored document of the wanted build: the
        page then loads that build's own scripts."""
        if route.request.resource_type != "document":
            await route.fallback()
            return
        await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=self.spec.wa_document,
                            headers={"cache-control": "no-store"})

    def _on_response(self, response) -> None:
        """Keep the live app document this page loaded: the first session to meet a build stores it."""
        if response.url == self.cfg.url and response.request.resource_type == "document" and response.ok:
            self._document = asyncio.ensure_future(response.body())
            self._document.add_done_callback(lambda f: f.cancelled() or f.exception())  # gone: never mind

    async def _loaded_document(self) -> bytes | None:
        if self._document is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(self._document), 5)
        except Exception:  # the page navigated on, the body is gone: recorded without it
            return None

    def _report_version(self, version: str | None) -> asyncio.Future:
        """Report the build the page runs when it changed (awaited by every event that needs it
        reported first: the failure it explains)."""
        if not version:
            return asyncio.ensure_future(asyncio.sleep(0))
        if self._reported is None or self._reported[0] != version:
            self._reported = (version, asyncio.ensure_future(self._emit_version(version)))
        return self._reported[1]

    async def _emit_version(self, version: str) -> None:
        live = self.spec.wa_document is None
        await self.emit(p.VersionLoaded(self.account_id, version=version, served=self.spec.wa_version,
                                        document=await self._loaded_document() if live else None))

    # --- page events ----------------------------------------------------------------------

    def _on_binding(self, _source, kind: str, payload: dict) -> None:
        self.spawn(self._handle(kind, payload or {}))

    def _on_closed(self, why: str) -> None:
        if not self.closing:
            self.spawn(self.emit(p.Disconnected(self.account_id, reason=why, retry=True)))

    async def _handle(self, kind: str, data: dict) -> None:
        a = self.account_id
        if kind == "loaded":
            self.loaded = True
            self.wa_version = data.get("version")
            await self._report_version(self.wa_version)
        elif kind == "incompatible":
            await self._report_version(data.get("version"))  # first: the failure is attributed to it
            modules = ", ".join(data.get("modules") or [])
            what = f"lacks {modules}" if modules else f"broke the bridge: {str(data.get('error'))[:300]}"
            await self.emit(p.Failed(a, reason="wa_web_incompatible",
                                     detail=f"wa_web_incompatible: WhatsApp Web {data.get('version')} {what}"))
        elif kind == "state":
            await self._on_state(data.get("state"))
        elif kind == "qr":
            await self._on_qr(data["qr"])
        elif kind == "code":
            await self.emit(p.PairingCode(a, code=str(data["code"])))
            self.spawn(self._expire_pairing_code())
        elif kind == "synced":
            await self._on_synced(data)
        elif kind == "logout":
            await self._logged_out("logged out from the phone")
        elif kind == "storage":
            self.login.storage_changed()
        elif kind == "ciphertext":
            self.undecrypted.add(data.get("id") or "")
            self.spawn(self._undecrypted_after_timeout(data))
        elif kind == "message":
            self.undecrypted.discard(data.get("id") or "")
            async with self._messages:
                await self.emit(p.MessageEvent(a, message=data))
        elif kind == "edit":
            edited = datetime.fromtimestamp(data["t"], timezone.utc) if data.get("t") else None
            async with self._messages:
                await self.emit(p.MessageEdited(a, wa_message_id=data.get("id") or "", body=data.get("body") or "",
                                                edited_at=edited))
        elif kind == "revoke":
            async with self._messages:
                await self.emit(p.MessageRevoked(a, wa_message_id=data.get("id") or ""))
        elif kind == "ack":
            await self.emit(p.AckEvent(a, wa_message_id=data.get("id") or "", ack=int(data.get("ack") or 0)))
        elif kind == "fenced":
            log.error("the page passed its lease deadline and left WhatsApp Web",
                      extra={"account_id": a, "deadline": data.get("deadline")})
            await self.emit(p.Disconnected(a, reason="lease deadline passed in the page", retry=True))
        elif kind == "error":
            log.warning("bridge error", extra={"account_id": a, **{k: str(v) for k, v in data.items()}})

    async def _undecrypted_after_timeout(self, view: dict) -> None:
        """A message still undecrypted after ``decrypt_timeout`` is stored as a placeholder
        (type ciphertext); when it decrypts later, the daemon completes that row."""
        await asyncio.sleep(self.cfg.decrypt_timeout)
        if view.get("id") in self.undecrypted:
            self.undecrypted.discard(view.get("id"))
            async with self._messages:
                await self.emit(p.MessageEvent(self.account_id, message=view))

    async def _on_state(self, state: str | None) -> None:
        a = self.account_id
        if state in NEEDS_LOGIN:
            self.loading_since = None
        elif self.loading_since is None and not self.ready:
            if self.last_state is None:  # the first state: watch the loading from now on
                self.spawn(self._watch_loading(self.cfg.ready_timeout))
            self.loading_since = time.monotonic()
        self.last_state = state
        if state == "CONFLICT":
            await self.emit(p.Failed(a, reason="conflict", detail="WhatsApp Web was opened in another browser; "
                                                                  "`blazzctl account connect` takes it back"))
        elif state in FATAL_STATES:
            await self.emit(p.Failed(a, reason=state.lower(), detail=f"WhatsApp Web reports {state}"))
        elif state in NEEDS_LOGIN and self.ready:
            await self._logged_out("unpaired: the phone removed this linked device")
        elif state in ("TIMEOUT", "OPENING") and self.ready:
            self.spawn(self._confirm_disconnect(state))

    async def _confirm_disconnect(self, state: str) -> None:
        await asyncio.sleep(5)  # WhatsApp often recovers from a short OPENING/TIMEOUT by itself
        try:
            now = await self.page.evaluate("() => window.__blazz.state()")
        except Exception:
            now = None
        if now in ("TIMEOUT", "OPENING", None):
            await self.emit(p.Disconnected(self.account_id, reason=f"connection lost ({state})", retry=True))

    async def _on_qr(self, qr: str) -> None:
        now = time.monotonic()
        if self.last_qr_at is not None:
            self.qr_lifetime = max(5.0, now - self.last_qr_at)
        self.last_qr_at = now
        self.qr_count += 1
        if self.qr_count > self.cfg.max_qr:
            await self.emit(p.Failed(self.account_id, reason="qr_expired",
                                     detail=f"no phone linked after {self.cfg.max_qr} QR codes"))
            return
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.qr_lifetime)
        await self.emit(p.Qr(self.account_id, qr=qr, expires_at=expires, rotation=self.qr_count))

    async def _watch_loading(self, timeout: float) -> None:
        """A linked page that does not get to ``hasSynced`` within ``timeout`` is restarted (the
        daemon fails the account after three in a row). Waiting for a QR scan or a code is not loading."""
        while not self.ready and not self.closing:
            await asyncio.sleep(min(1.0, timeout))
            since = self.loading_since
            if not self.ready and since is not None and time.monotonic() - since >= timeout:
                await self.emit(p.Disconnected(self.account_id, reason="stuck_loading", retry=True))
                return

    async def _expire_pairing_code(self) -> None:
        """Like ``max_qr`` for QR codes: a code nobody enters does not keep a browser forever."""
        await asyncio.sleep(self.cfg.pairing_timeout)
        if not self.ready:
            await self.emit(p.Failed(self.account_id, reason="pairing_code_expired",
                                     detail=f"no phone entered the pairing code within {self.cfg.pairing_timeout:g} s"))

    async def _on_synced(self, me: dict) -> None:
        if self.ready:
            return
        self.ready = True
        user = me.get("user") or ""
        phone = f"+{user}" if user.isdigit() else (self.spec.phone_number or "")
        await self.emit(p.Authenticated(self.account_id))
        await self.emit(p.Ready(self.account_id, phone_number=phone, push_name=me.get("pushname"),
                                wa_version=self.wa_version))
        self.spawn(self.login.periodic())

    async def _logged_out(self, why: str) -> None:
        self.logged_out = True
        await self.emit(p.LoggedOut(self.account_id, reason=why))

    # --- checkpoints (portable login) ------------------------------------------------------------

    async def checkpoint(self) -> bool:
        """Archive the login into the database (fenced by our lease). False when it was not stored."""
        return await self.login.checkpoint()

    # --- shutdown ------------------------------------------------------------------------------

    async def close(self, *, checkpoint: bool) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        if self._launched is not None:
            # A stop while Chromium is starting (a release for rebalance or drain, a lost lease)
            # must not return before the browser exists: it would be left running, unowned.
            await self._launched.wait()
        saved = False
        if checkpoint and self.ready and not self.logged_out and self.provider.pool is not None:
            # A snapshot is read from the page: before its context closes.
            self.closing = False
            try:
                saved = await self.checkpoint()
            finally:
                self.closing = True
        if self.pooled:
            await self.provider.pool.release(self.account_id)
        elif self.context is not None:
            try:
                await self.context.close()
            except Exception:
                pass
        if self.logged_out:  # a dead login must not be restored, nor archived, nor relaunched
            await asyncio.to_thread(profile.delete, self.profile)
            return
        if checkpoint and not saved and not self.pooled and self.ready and profile.has_login(self.profile):
            self.closing = False  # checkpoint() checks it; no events can fire: the browser is gone
            try:
                await self.checkpoint()
            finally:
                self.closing = True

    async def logout(self) -> None:
        if self.page is not None:
            try:
                await asyncio.wait_for(self.page.evaluate("() => window.__blazz.logout()"), timeout=10)
            except Exception as exc:
                log.warning("in-page logout failed", extra={"account_id": self.account_id, "error": p.first_line(exc)})
        await self.close(checkpoint=False)
        await asyncio.to_thread(profile.delete, self.profile)

    # --- calls into the page -------------------------------------------------------------------

    async def push_deadline(self, deadline: float) -> None:
        """Tell the page until when our lease holds (wall-clock seconds); past it, it blanks itself."""
        if self.page is None or self.closing:
            return
        try:
            await asyncio.wait_for(self.page.evaluate("(d) => { window.__blazzDeadline = d; }", deadline), 2)
        except Exception:  # the page is loading or gone: the next renewal pushes again
            pass

    async def call(self, function: str, *args: Any, timeout: float = 60) -> Any:
        if self.page is None or not self.ready:
            raise p.SessionNotReady(f"account {self.account_id} is not connected")
        try:
            return await asyncio.wait_for(
                self.page.evaluate(f"(args) => window.__blazz.{function}(...args)", list(args)), timeout=timeout)
        except Exception as exc:
            text = p.first_line(exc)
            if any(s in text for s in ("Execution context was destroyed", "detached Frame", "Target closed",
                                       "has been closed")):
                self._on_closed(f"lost the page: {text}")
                raise p.SessionNotReady(text) from None
            raise

    @staticmethod
    def media_payload(media: dict) -> dict:
        """The page's media argument: the bytes the daemon read from the database (``data``), or
        else (a message queued before media was stored there) the file at ``path``, base64-encoded."""
        path = Path(media["path"])
        data = media["data"] if media.get("data") is not None else path.read_bytes()
        mimetype = media.get("mimetype") or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return {"data": base64.b64encode(data).decode(), "mimetype": mimetype,
                "filename": media.get("filename") or path.name, "caption": media.get("caption"),
                "asDocument": bool(media.get("as_document"))}
