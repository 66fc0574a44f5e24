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
