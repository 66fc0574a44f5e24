"""Workspaces: create, list, show."""

from __future__ import annotations

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.errors import Conflict
from blazzctl.models import Workspace
from blazzctl.services import audit


def create(session: Session, *, name: str) -> Workspace:
    name = validate.name(name, what="workspace name")
    if session.scalars(select(Workspace.id).where(Workspace.name == name)).first() is not None:
        raise Conflict(f"a workspace named {name!r} already exists", hint="Choose another name.")
    workspace = Workspace(name=name)
    session.add(workspace)
    try:
        session.flush()
    except exc.IntegrityError:
        raise Conflict(f"a workspace named {name!r} already exists", hint="Choose another name.") from None
    audit.record(session, command="workspace create", target_type="workspace", target=name,
                 workspace_id=workspace.id)
    return workspace


def list_all(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.id)))
