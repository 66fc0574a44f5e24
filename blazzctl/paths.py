"""Where blazz keeps files on a host (XDG base directories, systemd's directories)."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def state_home() -> Path:
    """``$XDG_STATE_HOME/blazz`` (``~/.local/state/blazz``)."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "blazz"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/blazz`` (``~/.config/blazz``)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "blazz"


def daemon_state_base(configured: str | None) -> Path:
    """Where session daemons keep state: $STATE_DIRECTORY (systemd), else config, else XDG."""
    systemd_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(systemd_dir) if systemd_dir else Path(configured).expanduser() if configured else state_home()


def daemon_state_dir(configured: str | None, instance: int) -> Path:
    """A daemon instance's own directory (Chromium profiles), below ``daemon_state_base``."""
    return daemon_state_base(configured) / f"session-{instance}"


# --- private files: blazz's files hold secrets (database password, logins, phone numbers) ---


def missing_dirs(directory: Path) -> list[Path]:
    """The directories ``private_dirs`` would create for ``directory``, outermost first."""
    return [d for d in reversed((directory, *directory.parents)) if not d.exists()]


def private_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents, each 0700 (``mkdir(parents=True)`` gives the
    parents the umask's bits); returns those created. Directories that exist are left alone."""
    created = missing_dirs(directory)
    for d in created:
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)  # mkdir's mode is masked by the umask
    return created


def create_private_file(path: Path, text: str | None = None) -> None:
    """Create ``path`` 0600 (never an existing file: FileExistsError), with ``text`` when given.

    Created with that mode rather than chmod-ed afterwards, so it is never readable by others,
    not even for a moment. SQLite gives a database's -wal and -shm files the database file's mode.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        if text:
            file.write(text)


def is_within(path: Path, base: Path) -> bool:
    """Whether ``path`` is ``base`` or below it (both made absolute, symlinks not followed)."""
    path, base = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    return path == base or base in path.parents


def check_may_create(target: Path, *, allowed: tuple[Path, ...], create_dirs: bool, what: str) -> list[Path]:
    """The directories creating ``target`` (a file) needs, when blazz may create them: below one
    of ``allowed`` (the user's own blazz directories), or anywhere with ``create_dirs``.
    Otherwise OperationFailed: a directory that does not exist elsewhere is as often a typo in a
    path as a wish, and a stray tree in /var or /srv is worse than a question."""
    from blazzctl.errors import OperationFailed

    needed = missing_dirs(target.parent)
    if needed and not create_dirs and not any(is_within(target.parent, base) for base in allowed):
        raise OperationFailed(
            f"the directory {target.parent} for {what} does not exist, and it is outside "
            f"{' and '.join(map(str, allowed))}, where blazz creates directories by itself; nothing was written",
            hint="Check the path (a typo?), create the directory yourself, or run `blazzctl init --create-dirs`.")
    return needed
