"""Whether another user could read a file: owner, group and mode bits against that user's ids.

``units install`` runs as root, and root reads everything: checking with ``os.access`` would
say yes to a configuration the daemons (``User=blazz``) cannot open. This reads the ids of the
service user from ``pwd``/``grp`` and applies the classic permission rules to the file and to
every directory above it (search permission). ACLs are not read: a file readable only through
an ACL is reported as unreadable, which errs on the side of telling the operator.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UserIds:
    name: str
    uid: int
    gids: frozenset[int]


def user_ids(name: str) -> UserIds | None:
    """The uid and every gid (primary and supplementary) of ``name``; None when no such user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    return UserIds(name, entry.pw_uid, frozenset(gids))


def unreadable_reason(path: Path | str, user: UserIds) -> str | None:
    """None when ``user`` can read the file ``path``; else why not, naming the path that blocks it."""
    path = Path(os.path.abspath(path))
    for directory in reversed(path.parents):
        info = _stat(directory)
        if info is None:
            return f"the file does not exist (there is no {directory})"
        if not _allowed(info, user, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return f"user {user.name!r} cannot enter {directory} ({_describe(info)})"
    info = _stat(path)
    if info is None:
        return "the file does not exist"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if not _allowed(info, user, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
        return f"user {user.name!r} cannot read it ({_describe(info)})"
    return None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()  # follows links, as opening the file does
    except OSError:
        return None


def _allowed(info: os.stat_result, user: UserIds, owner_bit: int, group_bit: int, other_bit: int) -> bool:
    if user.uid == 0:
        return True  # root: read and search permission on anything (CAP_DAC_OVERRIDE)
    # The kernel uses the first class that matches, even when a later one would allow more.
    if info.st_uid == user.uid:
        return bool(info.st_mode & owner_bit)
    if info.st_gid in user.gids:
        return bool(info.st_mode & group_bit)
    return bool(info.st_mode & other_bit)


def _describe(info: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(info.st_mode):04o}, owner {_user_name(info.st_uid)}:{_group_name(info.st_gid)}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
