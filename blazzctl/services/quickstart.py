"""What `blazzctl quickstart` needs: a reachability check and get-or-create of the demo account."""

from __future__ import annotations

import urllib.error
import urllib.request

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl.errors import OperationFailed
from blazzctl.models import WhatsAppAccount, Workspace
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
    ws = session.scalars(select(Workspace).where(Workspace.name == workspace)).first()
    if ws is None:
        ws = workspaces.create(session, name=workspace)
    acc = session.scalars(select(WhatsAppAccount).where(WhatsAppAccount.workspace_id == ws.id,
                                                        WhatsAppAccount.name == name,
                                                        WhatsAppAccount.deleted_at.is_(None))).first()
    if acc is not None:
        return acc.id, False
    return accounts.add(session, workspace=ws, name=name).id, True


def live_daemon_count(session: Session, settings) -> int:
    return commands.live_daemons(session, heartbeat_interval=settings.daemon.heartbeat_interval)
