"""An account's Chromium profile on disk: the login part of it, packed and unpacked.

WhatsApp Web keeps its login in IndexedDB under a non-extractable WebCrypto key, so only a
copy of the profile's own storage carries it (``storage_state()`` cannot). These two folders
are enough; the rest of the profile is cache that Chromium rebuilds.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

LOGIN_DIRS = ("Default/IndexedDB", "Default/Local Storage")
MARKER = ".blazz-archive.json"  # which archive (version, checksum) this profile was restored from or saved as


def pack(profile: Path) -> bytes:
    """A tar of the login folders (empty folders are fine)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in LOGIN_DIRS:
            folder = profile / rel
            if folder.is_dir():
                tar.add(folder, arcname=rel, filter=_skip_locks)
    return buffer.getvalue()


def _skip_locks(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name.endswith("/LOCK") else info


def unpack(profile: Path, data: bytes) -> None:
    """Replace the profile's login folders with the archive's."""
    for rel in LOGIN_DIRS:
        shutil.rmtree(profile / rel, ignore_errors=True)
    profile.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(profile, filter="data")


def remove_locks(profile: Path) -> list[str]:
    """Drop Chromium's ``Singleton*`` files a killed browser left (they block a relaunch)."""
    removed = []
    for lock in profile.glob("Singleton*"):
        lock.unlink(missing_ok=True)
        removed.append(lock.name)
    return removed


def local_archive(profile: Path) -> tuple[int, str]:
    """(version, checksum) of the archive this profile was last restored from or saved as; (0, "") if none.

    The checksum matters: versions start over at 1 after a logout deleted an account's archives,
    so a version number alone can make an old, dead login pass for the current one.
    """
    try:
        marker = json.loads((profile / MARKER).read_text())
        return int(marker["version"]), str(marker.get("checksum") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return 0, ""


def set_local_archive(profile: Path, version: int, checksum: str) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    (profile / MARKER).write_text(json.dumps({"version": version, "checksum": checksum}))


def has_login(profile: Path) -> bool:
    return (profile / LOGIN_DIRS[0]).is_dir()


def delete(profile: Path) -> None:
    shutil.rmtree(profile, ignore_errors=True)
