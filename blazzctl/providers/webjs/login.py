"""Where one session's login lives, and how it is archived into the database.

Two kinds of archive, told apart by their first bytes: a **snapshot** of the page's storage
(``snapshot.py``), for a context in a pooled browser, and the login folders of a persistent
**profile** (``profile.py``), for an account with a Chromium of its own. Both are compressed,
encrypted and chunked by ``blazzctl.services.auth_archives``, fenced by the session's lease.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tarfile
from typing import TYPE_CHECKING

from blazzctl.providers import base as p
from blazzctl.providers.webjs import profile, snapshot
from blazzctl.services import auth_archives as archives

if TYPE_CHECKING:
    from blazzctl.providers.webjs.session import WebjsSession

log = logging.getLogger("blazz.webjs")

FIRST_CHECKPOINT = 5.0  # seconds after ready for a profile (a pooled context is archived at once)


class Login:
    def __init__(self, session: WebjsSession) -> None:
        self.session = session
        self.pooled = False  # a context in a shared browser, the login a snapshot (decided by prepare)
        self.restoring: bytes | None = None  # a snapshot to write into the context before the app runs
        self._refused = False  # this profile's keys cannot be exported: it archives as a profile
        self._archiving = asyncio.Lock()  # one checkpoint at a time (periodic, after sends, at close)
        self._soon: asyncio.Task | None = None
        self._failing = False  # the last snapshot failed (reported once, until one succeeds)

    @property
    def account_id(self) -> int:
        return self.session.account_id

    def prepare(self) -> None:
        """Decide where this run keeps the login and bring the newest archive there.

        A snapshot goes into a pooled context (with accounts_per_browser 1: into a fresh profile,
        which its next checkpoint archives as a profile). A profile archive is unpacked into the
        profile unless the local profile is that archive (or a later state of it), also when
        browsers are pooled: a login whose key was made before blazz made keys exportable cannot
        travel as a snapshot; it keeps a Chromium of its own until it is linked again.
        """
        s = self.session
        db, where = s.provider.database, s.profile
        self.pooled = s.provider.pool is not None
        newest = archives.newest(db, account_id=self.account_id)
        if newest is None:
            return
        local = profile.local_archive(where) == (newest.version, newest.checksum)
        if local and not self.pooled:
            return
        plain = archives.load(db, account_id=self.account_id, version=newest.version, key=s.provider.key())
        if snapshot.is_snapshot(plain):
            try:  # what retrying cannot fix fails the account here; a page that fails to take it is retried
                origin = snapshot.decode(plain)["origin"]
                if origin != snapshot.origin_of(s.cfg.url):
                    raise snapshot.SnapshotError(f"it is of {origin}, and providers.webjs.url is {s.cfg.url}")
            except snapshot.SnapshotError as exc:
                raise archives.ArchiveError("auth_archive_corrupt", f"the login snapshot cannot be used: {exc}") from None
            if not self.pooled:
                profile.delete(where)
            self.restoring = plain
            log.info("restoring login snapshot", extra={"account_id": self.account_id, "version": newest.version,
                                                       "pooled": self.pooled})
            return
        self.pooled = False
        if local:
            return
        try:
            profile.unpack(where, plain)
        except (profile.UnsafeArchive, tarfile.TarError) as exc:
            raise archives.ArchiveError("auth_archive_corrupt", f"the login archive cannot be unpacked: {exc}") from None
        profile.set_local_archive(where, newest.version, newest.checksum)
        log.info("restored login", extra={"account_id": self.account_id, "version": newest.version})

    async def periodic(self) -> None:
        # A pooled context keeps nothing once closed: its login is archived at once.
        await asyncio.sleep(0 if self.pooled else FIRST_CHECKPOINT)
        while not self.session.closing:
            await self.checkpoint()
            await asyncio.sleep(self.session.cfg.checkpoint_interval)

    async def checkpoint(self) -> bool:
        """Archive the login into the database (fenced by our lease). False when it was not stored."""
        async with self._archiving:
            return await self._checkpoint()

    async def _checkpoint(self) -> bool:
        s = self.session
        try:
            plain = await self._bytes()
            if plain is None:
                return False
            version = await asyncio.to_thread(archives.save, s.provider.database, account_id=self.account_id,
                                              owner=s.provider.daemon_name, epoch=s.spec.epoch,
                                              plain=plain, key=s.provider.key())
        except archives.NotOwned:
            return False
        except Exception as exc:  # a file changing under tar, a key problem: try again next time
            log.warning("checkpoint failed", extra={"account_id": self.account_id, "error": p.first_line(exc)})
            return False
        if not self.pooled:
            profile.set_local_archive(s.profile, version, hashlib.sha256(plain).hexdigest())
        if self._failing:
            self._failing = False
            await s.emit(p.LoginNotArchived(self.account_id, detail=None))
        log.info("login archived", extra={"account_id": self.account_id, "version": version, "bytes": len(plain),
                                          "kind": "snapshot" if snapshot.is_snapshot(plain) else "profile"})
        return True

    async def _bytes(self) -> bytes | None:
        """What to archive: with pooled browsers, a snapshot of the page's storage (from a profile
        too, when its keys can be exported: the account is pooled from its next start), else the
        profile's login folders. None: nothing to archive now (a pooled snapshot failed: the
        previous archive stays, which is still a working login)."""
        s = self.session
        if s.provider.pool is not None and not self._refused and s.page is not None:
            try:
                return await snapshot.take(s.page, s.cfg.url)
            except snapshot.SnapshotError as exc:
                if self.pooled:
                    s.provider.snapshot_failures += 1
                    log.error("login snapshot failed; the previous archive is kept",
                              extra={"account_id": self.account_id, "error": str(exc)})
                    if not self._failing:
                        self._failing = True
                        await s.emit(p.LoginNotArchived(self.account_id, detail=f"login snapshot refused: {exc}"))
                    return None
                self._refused = True
                log.info("login kept as a profile archive: it cannot be snapshotted",
                         extra={"account_id": self.account_id, "error": str(exc)})
        if self.pooled:
            return None
        return await asyncio.to_thread(profile.pack, s.profile)

    def storage_changed(self) -> None:
        """The page wrote its storage: a pooled login is archived within ``snapshot_after`` seconds,
        so a takeover after a crash restores a login at most that old."""
        s = self.session
        if not self.pooled or not s.ready or s.closing:
            return
        if self._soon is None or self._soon.done():
            self._soon = asyncio.create_task(self._later())
            s.tasks.add(self._soon)
            self._soon.add_done_callback(s.tasks.discard)

    async def _later(self) -> None:
        await asyncio.sleep(self.session.cfg.snapshot_after)
        if not self.session.closing:
            await self.checkpoint()
