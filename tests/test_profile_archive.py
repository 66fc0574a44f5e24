"""Login archives unpack safely on every Python blazz supports, Debian 12's 3.11.2 included.

``tarfile``'s ``filter="data"`` arrived in 3.11.4; Debian 12 ships 3.11.2. ``profile.unpack``
checks every member itself, so these run the same on both.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from blazzctl.providers.webjs import profile


def login_profile(root: Path) -> Path:
    for rel, name, body in (("Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb", "000003.log", b"key"),
                            ("Default/Local Storage/leveldb", "CURRENT", b"MANIFEST-000001\n")):
        folder = root / rel
        folder.mkdir(parents=True)
        (folder / name).write_bytes(body)
    return root


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, body in members:
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_pack_then_unpack_gives_the_login_folders_back(tmp_path):
    source = login_profile(tmp_path / "a")
    (source / "Default" / "IndexedDB" / "LOCK").write_bytes(b"")
    target = tmp_path / "b"
    (target / "Default" / "IndexedDB" / "stale").mkdir(parents=True)  # replaced, not merged
    profile.unpack(target, profile.pack(source))
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log",
                     "Default/Local Storage/leveldb/CURRENT"]
    assert (target / files[0]).read_bytes() == b"key"
    assert (target / files[0]).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("bad", [
    (member("/etc/passwd"), b"x"),
    (member("Default/IndexedDB/../../../escaped"), b"x"),
    (member("Default/IndexedDB/link", tarfile.SYMTYPE, "/etc/passwd"), None),
    (member("Default/IndexedDB/hard", tarfile.LNKTYPE, "Default/IndexedDB/x"), None),
    (member("Default/IndexedDB/dev", tarfile.CHRTYPE), None),
    (member("Default/IndexedDB/fifo", tarfile.FIFOTYPE), None),
    (member("Default/Preferences"), b"{}"),  # a file outside the login folders
], ids=["absolute", "dotdot", "symlink", "hardlink", "device", "fifo", "outside-login-dirs"])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, bad):
    target = login_profile(tmp_path / "profile")
    before = sorted(p for p in target.rglob("*"))
    data = tar_of((member("Default/IndexedDB/ok"), b"fine"), bad)
    with pytest.raises(profile.UnsafeArchive):
        profile.unpack(target, data)
    assert sorted(p for p in target.rglob("*")) == before  # the old login is untouched
    assert not (tmp_path / "escaped").exists()
