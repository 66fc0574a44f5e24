"""Portable WhatsApp Web logins: a profile's login state, compressed, encrypted, chunked in the database.

Writes are fenced like every daemon write: an archive is stored only while the writer still
holds the account's lease ``(owner, epoch)``.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select, update

from blazzctl import paths
from blazzctl.db import Database, db_now
from blazzctl.keys import SessionKey
from blazzctl.models import AuthArchive, AuthArchiveChunk, WhatsAppAccount
from blazzctl.models.auth_archive import CHUNK_BYTES

FORMAT = 1
KEEP = 2  # newest archives kept per account


class ArchiveError(Exception):
    """An archive that cannot be used: ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NotOwned(Exception):
    """The lease changed: the archive was not stored."""


@dataclass(frozen=True)
class ArchiveInfo:
    version: int
    created_at: datetime
    size_bytes: int
    checksum: str = ""  # sha256 of the plaintext: names one login's archive (versions restart after a logout)


def _aad(account_id: int, version: int) -> bytes:
    return f"blazz-auth:{account_id}:{version}".encode()


def seal(plain: bytes, key: SessionKey, account_id: int, version: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(key.key).encrypt(nonce, lzma.compress(plain, preset=1), _aad(account_id, version))


def unseal(blob: bytes, key: SessionKey, account_id: int, version: int, checksum: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        packed = AESGCM(key.key).decrypt(blob[:12], blob[12:], _aad(account_id, version))
    except InvalidTag:
        raise ArchiveError("auth_archive_undecryptable",
                           "the login archive cannot be decrypted with this host's session key: every host "
                           "sharing the database needs the same secrets.session_key_file") from None
    try:
        plain = lzma.decompress(packed)
    except lzma.LZMAError:
        raise ArchiveError("auth_archive_corrupt", "the login archive is corrupt (cannot decompress)") from None
    if hashlib.sha256(plain).hexdigest() != checksum:
        raise ArchiveError("auth_archive_corrupt", "the login archive is corrupt (checksum mismatch)")
    return plain


def save(db: Database, *, account_id: int, owner: str, epoch: int, plain: bytes, key: SessionKey) -> int:
    """Store a new archive version while holding the lease; returns the version."""
    with db.session() as s:
        held = s.execute(update(WhatsAppAccount).where(
            WhatsAppAccount.id == account_id, WhatsAppAccount.owner == owner, WhatsAppAccount.lease_epoch == epoch,
        ).values(auth_saved_at=db_now()).execution_options(synchronize_session=False)).rowcount
        if held != 1:
            raise NotOwned(account_id)
        version = (s.scalar(select(func.max(AuthArchive.version)).where(
            AuthArchive.whatsapp_account_id == account_id)) or 0) + 1
        blob = seal(plain, key, account_id, version)
        chunks = [blob[i:i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        archive = AuthArchive(whatsapp_account_id=account_id, version=version, format=FORMAT,
                              checksum=hashlib.sha256(plain).hexdigest(), size_bytes=len(blob),
                              chunk_count=len(chunks), key_id=key.key_id, created_by=owner)
        s.add(archive)
        s.flush()
        for seq, chunk in enumerate(chunks):
            s.add(AuthArchiveChunk(archive_id=archive.id, seq=seq, data=chunk))
        s.flush()
        old = s.scalars(select(AuthArchive.id).where(AuthArchive.whatsapp_account_id == account_id)
                        .order_by(AuthArchive.version.desc()).offset(KEEP)).all()
        if old:
            s.execute(delete(AuthArchiveChunk).where(AuthArchiveChunk.archive_id.in_(old)))
            s.execute(delete(AuthArchive).where(AuthArchive.id.in_(old)))
    return version


def newest(db: Database, *, account_id: int) -> ArchiveInfo | None:
    with db.session() as s:
        row = s.execute(select(AuthArchive.version, AuthArchive.created_at, AuthArchive.size_bytes,
                               AuthArchive.checksum)
                        .where(AuthArchive.whatsapp_account_id == account_id)
                        .order_by(AuthArchive.version.desc()).limit(1)).first()
    return ArchiveInfo(*row) if row else None


def load(db: Database, *, account_id: int, version: int, key: SessionKey) -> bytes:
    """The plaintext of one archive version, verified."""
    with db.session() as s:
        archive = s.scalars(select(AuthArchive).where(AuthArchive.whatsapp_account_id == account_id,
                                                      AuthArchive.version == version)).one()
        chunks = s.scalars(select(AuthArchiveChunk.data).where(AuthArchiveChunk.archive_id == archive.id)
                           .order_by(AuthArchiveChunk.seq)).all()
        checksum, count = archive.checksum, archive.chunk_count
    if len(chunks) != count:
        raise ArchiveError("auth_archive_corrupt", f"the login archive has {len(chunks)} of {count} chunks")
    return unseal(b"".join(chunks), key, account_id, version, checksum)


def delete_all(db: Database, *, account_id: int) -> None:
    with db.session() as s:
        delete_in(s, account_id=account_id)


def delete_in(session, *, account_id: int) -> int:
    """Delete the account's archives and their chunks in the caller's transaction; returns how many."""
    ids = session.scalars(select(AuthArchive.id).where(AuthArchive.whatsapp_account_id == account_id)).all()
    if ids:
        session.execute(delete(AuthArchiveChunk).where(AuthArchiveChunk.archive_id.in_(ids)))
        session.execute(delete(AuthArchive).where(AuthArchive.id.in_(ids)))
    return len(ids)


# --- local profiles: the other place a login lives ---------------------------------------------------

SYSTEM_STATE_DIR = Path("/var/lib/blazz")  # the units' StateDirectory=blazz


@dataclass
class LocalProfiles:
    """What deleting an account's Chromium profiles on this host did."""

    deleted: list[Path] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (profile, why it could not be deleted)


def state_bases(configured: str | None) -> list[Path]:
    """Every daemon state directory of this host a profile may live in: the configured one (or
    ``$STATE_DIRECTORY``, or the XDG one), and the system units' ``/var/lib/blazz``."""
    found: list[Path] = []
    for base in (paths.daemon_state_base(configured), paths.state_home(), SYSTEM_STATE_DIR):
        if base not in found:
            found.append(base)
    return found


def delete_local_profiles(bases: list[Path], session_id: str) -> LocalProfiles:
    """Delete ``session-*/profiles/<session_id>`` below each base (profiles of every daemon instance)."""
    result = LocalProfiles()
    for base in bases:
        try:
            candidates = sorted(base.glob(f"session-*/profiles/{session_id}"))
        except OSError as exc:  # e.g. /var/lib/blazz is the service user's, mode 0700
            if base.exists():
                result.kept.append((base / "session-*" / "profiles" / session_id, exc.strerror or str(exc)))
            continue
        if not candidates and base.exists() and not os.access(base, os.R_OK | os.X_OK):
            result.kept.append((base / "session-*" / "profiles" / session_id, "permission denied"))
        for profile in candidates:
            try:
                shutil.rmtree(profile)
                result.deleted.append(profile)
            except OSError as exc:
                result.kept.append((profile, exc.strerror or str(exc)))
    return result
