"""What `blazzctl quickstart` needs: a reachability check and get-or-create of the demo account."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl.errors import OperationFailed
from blazzctl.models import WhatsAppAccount
from blazzctl.services import accounts, commands, workspaces


def check_reachable(url: str, timeout: float = 8.0) -> None:
    """Fail fast, naming the URL, when WhatsApp Web (or the configured fake) cannot be reached."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "blazz-quickstart"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # the server answered: it is reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperationFailed(f"cannot reach {url}: {reason}",
                              hint="blazz needs to reach WhatsApp Web. Check this host's internet access, or set "
                                   "providers.webjs.url (BLAZZ_WEBJS_URL) to a reachable WhatsApp Web, e.g. the "
                                   "offline fake: python -m tests.fakes.wa_web --port 8900") from None


def ensure_account(session: Session, *, workspace: str, name: str) -> tuple[int, bool]:
    """(account id, created?) for the named account, creating workspace and account when missing."""
    ws = workspaces.find_live(session, workspace)  # a removed workspace of that name is not reused
    if ws is None:
        ws = workspaces.create(session, name=workspace)
    acc = session.scalars(select(WhatsAppAccount).where(WhatsAppAccount.workspace_id == ws.id,
                                                        WhatsAppAccount.name == name,
                                                        WhatsAppAccount.deleted_at.is_(None))).first()
    if acc is not None:
        return acc.id, False
    return accounts.add(session, workspace=ws, name=name).id, True


def where_database(url: str) -> str:
    """The database for people: the file of an SQLite URL, else the URL without its password."""
    from sqlalchemy.engine import make_url

    from blazzctl.db import redact_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 (checked by config loading already; never show it raw)
        return redact_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"{os.path.abspath(parsed.database)} (SQLite)"
    return redact_url(url)


def daemon_log_path(settings) -> Path:
    """Where the session daemons quickstart starts write their log: under the daemons' state directory."""
    from blazzctl import paths

    return paths.daemon_state_base(settings.daemon.state_dir) / "logs" / "sessiond.log"


def open_daemon_log(path: Path):
    """``path`` opened for appending, 0600 in a 0700 directory (logs name accounts and phones)."""
    _private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise OperationFailed(f"cannot write the daemon log {path}: {exc.strerror}",
                              hint="Check the directory's owner and permissions, or set daemon.state_dir "
                                   "(BLAZZ_DAEMON_STATE_DIR) to a directory you can write.") from None
    os.fchmod(fd, 0o600)  # an older file may have been created with looser bits
    return os.fdopen(fd, "a", buffering=1)


def _private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents 0700 (``mkdir(parents=True)`` gives parents the
    umask's bits), and make ``directory`` itself 0700."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        for d in reversed(missing):
            d.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
    except OSError as exc:
        raise OperationFailed(f"cannot create {directory} for the daemon log: {exc.strerror}",
                              hint="Set daemon.state_dir (BLAZZ_DAEMON_STATE_DIR) to a directory you can "
                                   "write.") from None


def live_daemon_count(session: Session, settings) -> int:
    return commands.live_daemons(session, heartbeat_interval=settings.daemon.heartbeat_interval)
