"""The audit trail: who ran which mutating command on what, and when."""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from blazzctl.models import AuditEvent


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def record(session: Session, *, command: str, target_type: str | None = None, target: str | None = None,
           workspace_id: int | None = None, details: dict | None = None) -> AuditEvent:
    """Add an audit row in the caller's transaction, so it exists only if the change does."""
    from blazzctl.models import AuditEvent  # loaded on writes only: reads start faster

    event = AuditEvent(os_user=os_user()[:64], sudo_user=(os.environ.get("SUDO_USER") or None),
                       command=command[:100], target_type=target_type,
                       target=target[:255] if target else None, workspace_id=workspace_id, details=details)
    session.add(event)
    return event


def list_events(session: Session, *, workspace_id: int | None = None, limit: int = 50) -> list[AuditEvent]:
    from blazzctl.models import AuditEvent

    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if workspace_id is not None:
        query = query.where(AuditEvent.workspace_id == workspace_id)
    return list(session.scalars(query))
