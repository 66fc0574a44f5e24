"""WhatsApp Web releases, the daemon's part: which build each session loads, what a failure of a
build means, and moving running sessions when the fleet's policy changes.

The policy lives in the database (``blazzctl/services/wa_versions.py``): pins and canaries set by
operators, and builds marked bad or deprecated by any daemon. Each session start reads it (the
spec carries the wanted build's stored app document). ``roll_loop`` reads it every
``providers.webjs.version_check_interval`` seconds and restarts, one at a time and at most ``providers.webjs.version_roll_rate`` a minute, the
sessions whose page runs another build than the policy wants: a pin, unpin, canary, promote or
reject never reloads the fleet at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from blazzctl.db import Database
from blazzctl.providers import base as p
from blazzctl.services import wa_versions

log = logging.getLogger("blazz.versions")

TICK = 1.0  # seconds between looks for a session to move (the policy is re-read every version_check_interval)
FAILURE_KINDS = {"wa_web_incompatible": wa_versions.SELF_CHECK, "stuck_loading": "stuck_loading"}


class Versions:
    def __init__(self, db: Database, settings, daemon: str) -> None:
        self.db = db
        self.cfg = settings  # WebjsSettings
        self.daemon = daemon
        self.policy = wa_versions.Policy()
        self.failures: dict[str, int] = {}  # build -> failures this daemon attributed to it (metrics)

    # --- session starts ------------------------------------------------------------------------

    def spec_fields(self, session, account_id: int) -> dict:
        """``wa_version``/``wa_document`` of a SessionSpec: the build the policy wants, when it is
        not the live one and its document is stored (read in the start's own transaction)."""
        self.policy = policy = wa_versions.policy(session)
        wanted = policy.wanted(account_id)
        if wanted is None or wanted in policy.unusable:
            return {}
        document = wa_versions.document(session, wanted)
        return {"wa_version": wanted, "wa_document": document} if document is not None else {}

    # --- what sessions report ------------------------------------------------------------------

    def loaded(self, event: p.VersionLoaded) -> None:
        with self.db.session() as s:
            if wa_versions.seen(s, version=event.version, html=event.document, live=event.served is None):
                log.warning("a WhatsApp Web build the fleet had not met", extra={
                    "account_id": event.account_id, "version": event.version,
                    "document_bytes": len(event.document or b"")})

    def connected(self, version: str) -> None:
        with self.db.session() as s:
            wa_versions.connected(s, version=version)

    def failed(self, *, account_id: int, version: str, served: str | None, reason: str, detail: str | None) -> bool:
        """Attribute a session failure to the build it ran. True when the account should simply be
        restarted: ``auto_pin`` moved the fleet to another build, or WhatsApp refused a pinned one."""
        if reason == "deprecated_version":
            if served is None:  # the live build itself is refused: nothing to fall back to here
                return False
            with self.db.session() as s:
                unpinned = wa_versions.deprecated(s, version=version, daemon=self.daemon)
            log.error("WhatsApp refused the pinned WhatsApp Web build: unpinned, sessions return to the live one"
                      if unpinned else "WhatsApp refused a stored WhatsApp Web build", extra={
                          "account_id": account_id, "version": version})
            return True
        kind = FAILURE_KINDS.get(reason)
        if kind is None:
            return False
        self.failures[version] = self.failures.get(version, 0) + 1
        with self.db.session() as s:
            verdict = wa_versions.failure(s, version=version, account_id=account_id, kind=kind, detail=detail,
                                          daemon=self.daemon, threshold=self.cfg.bad_version_failures,
                                          window=self.cfg.bad_version_window, act=self.cfg.auto_pin)
        with self.db.session() as s:
            self.policy = wa_versions.policy(s)
        if verdict.bad:
            log.critical("WhatsApp Web build marked bad: the fleet moves to the last good one", extra={
                "version": verdict.bad, "pinned": verdict.pinned, "reason": reason})
        wanted = self.policy.wanted(account_id)
        return self.cfg.auto_pin and wanted is not None and wanted != version and wanted not in self.policy.unusable

    # --- moving running sessions ----------------------------------------------------------------

    def needs_move(self, account_id: int, *, loaded: str | None, served: str | None) -> bool:
        """Whether a connected session runs another build than the policy wants for it."""
        if loaded is None:
            return False
        policy = self.policy
        wanted = policy.wanted(account_id)
        if wanted is not None and wanted not in policy.unusable:
            return loaded != wanted
        # The live build is wanted: a session on a stored build goes back to it, unless it is that build.
        return served is not None and loaded != policy.live

    async def roll_loop(self, sessions, stopping: asyncio.Event) -> None:
        """Restart (login kept) one session at a time whose build the policy no longer wants,
        waiting until it is connected again before the next, at most ``version_roll_rate`` a
        minute. The policy is read every ``version_check_interval`` s, and only while a session
        here has reported its build (an idle daemon adds no query)."""
        gap = 60.0 / self.cfg.version_roll_rate
        last = read_at = 0.0
        moving: int | None = None
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=TICK)
                return
            except asyncio.TimeoutError:
                pass
            if not any(o.wa_loaded for o in sessions.owned.values()):
                continue
            if time.monotonic() - read_at >= self.cfg.version_check_interval:
                try:
                    self.policy = await asyncio.to_thread(self._read_policy)
                    read_at = time.monotonic()
                except Exception as exc:  # the database is away: the next round reads it
                    log.warning("could not read the WhatsApp Web policy", extra={"error": str(exc)[:200]})
                    continue
            if moving is not None:
                owned = sessions.owned.get(moving)
                if owned is not None and owned.state != "stopping" and not owned.connected \
                        and time.monotonic() - last < self.cfg.start_timeout + self.cfg.ready_timeout:
                    continue  # the previous move is still connecting
                moving = None
            if time.monotonic() - last < gap:
                continue
            for owned in list(sessions.owned.values()):
                if owned.state == "live" and owned.connected and self.needs_move(
                        owned.account_id, loaded=owned.wa_loaded, served=owned.wa_served):
                    log.info("moving a session to another WhatsApp Web build", extra={
                        "account_id": owned.account_id, "from": owned.wa_loaded,
                        "to": self.policy.wanted(owned.account_id) or f"live {self.policy.live}"})
                    moving, last = owned.account_id, time.monotonic()
                    await sessions.restart(owned.account_id)
                    break

    def _read_policy(self) -> wa_versions.Policy:
        with self.db.session() as s:
            return wa_versions.policy(s)
