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
from pathlib import Path, PurePosixPath

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


class UnsafeArchive(Exception):
    """An archive member that could write outside the login folders (or is not a plain file)."""


def unpack(profile: Path, data: bytes) -> None:
    """Replace the profile's login folders with the archive's.

    Every member is checked before anything is written: only regular files and folders under
    LOGIN_DIRS, with relative names and no ``..``. No links, devices or FIFOs. This is done here
    rather than with ``extractall(filter="data")``, which Debian 12's Python 3.11.2 does not
    have (the filter arrived in 3.11.4), and it is stricter: an archive is ours, so anything
    unexpected in it means it is not.
    """
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        for rel in LOGIN_DIRS:
            shutil.rmtree(profile / rel, ignore_errors=True)
        profile.mkdir(parents=True, exist_ok=True)
        for member in members:
            target = profile.joinpath(*PurePosixPath(member.name).parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            target.chmod(0o600)


def _check_member(member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"the login archive holds {member.name!r}, which is not a plain file or folder")
    if name.is_absolute() or ".." in name.parts or "\\" in member.name:
        raise UnsafeArchive(f"the login archive holds a path outside the profile: {member.name!r}")
    if not any(name == PurePosixPath(rel) or PurePosixPath(rel) in name.parents for rel in LOGIN_DIRS):
        raise UnsafeArchive(f"the login archive holds {member.name!r}, outside the login folders")


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
