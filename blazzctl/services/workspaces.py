"""Workspaces: create, list, rename, remove (offboard a tenant).

Removal is a soft delete (docs/architecture.md): the row stays, with everything it owns,
for the audit trail and data retention, but nothing finds it any more, and its name is
free for a new workspace (unique among live workspaces only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, exc, or_, select, update
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, DesiredState
from blazzctl.errors import Conflict, NotFound
from blazzctl.models import WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit

_TAKEN_HINT = "Choose another name, or rename or remove that workspace first."


def create(session: Session, *, name: str) -> Workspace:
    name = validate.name(name, what="workspace name")
    _ensure_name_free(session, name)
    workspace = Workspace(name=name)
    session.add(workspace)
    _flush_or_conflict(session, name)
    audit.record(session, command="workspace create", target_type="workspace", target=name,
                 workspace_id=workspace.id)
    return workspace


def list_all(session: Session) -> list[Workspace]:
    """The live workspaces, in id order."""
    return list(session.scalars(select(Workspace).where(Workspace.deleted_at.is_(None)).order_by(Workspace.id)))


def find_live(session: Session, name: str) -> Workspace | None:
    """The live workspace with exactly this name, if any."""
    return session.scalars(select(Workspace).where(Workspace.name == name, Workspace.deleted_at.is_(None))).first()


def removed_ids():
    """The ids of removed workspaces, as a subquery: lists across workspaces leave out what
    those own (few rows, and messages and runs are filtered by an indexed id)."""
    return select(Workspace.id).where(Workspace.deleted_at.is_not(None))


def rename(session: Session, *, workspace: Workspace, name: str) -> tuple[str, Workspace]:
    """Give a workspace a new name (unique among live workspaces); returns (old name, workspace).

    Renaming to the current name changes nothing and records nothing.
    """
    name = validate.name(name, what="workspace name")
    _lock_live(session, workspace)
    old = workspace.name
    if name == old:
        return old, workspace
    _ensure_name_free(session, name)
    workspace.name = name
    _flush_or_conflict(session, name)
    audit.record(session, command="workspace rename", target_type="workspace", target=name,
                 workspace_id=workspace.id, details={"from": old, "to": name})
    return old, workspace


@dataclass
class Removal:
    """What ``remove`` did: the workspace and what it took with it."""

    workspace: Workspace
    accounts: list[str] = field(default_factory=list)  # names of the accounts removed
    webhooks: int = 0  # endpoints deleted (their queued deliveries with them)
    api_keys: int = 0  # keys revoked


def live_accounts(session: Session, workspace_id: int) -> list[WhatsAppAccount]:
    """Accounts that keep (or are getting) a WhatsApp session: connected, or asked to run."""
    return list(session.scalars(select(WhatsAppAccount).where(
        WhatsAppAccount.workspace_id == workspace_id, WhatsAppAccount.deleted_at.is_(None),
        or_(WhatsAppAccount.desired_state == DesiredState.RUNNING,
            WhatsAppAccount.status == AccountStatus.CONNECTED)).order_by(WhatsAppAccount.id)))


def refuse_live(session: Session, *, workspace: Workspace) -> None:
    """Conflict (exit 4) when the workspace has live accounts, naming them."""
    live = live_accounts(session, workspace.id)
    if live:
        names = ", ".join(repr(a.name) for a in live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        raise Conflict(f"workspace {workspace.name!r} has {len(live)} live (connected or running) account(s): "
                       f"{names}", hint=f"Disconnect them first (`blazzctl account disconnect NAME --workspace "
                                        f"{workspace.name}`), or add --force to stop and remove them.")


def remove(session: Session, *, workspace: Workspace, force: bool = False) -> Removal:
    """Offboard a workspace in one transaction: its webhook endpoints and their queued deliveries
    are deleted (nothing is sent to the tenant any more, the account status changes below
    included), every account is removed as ``account remove --force`` removes it (daemons release
    it, pending messages and open commands are cancelled), its API keys are revoked, and the
    workspace is marked removed. Refused while an account is live, unless ``force``.
    """
    from blazzctl.services import accounts

    _lock_live(session, workspace)
    if not force:
        refuse_live(session, workspace=workspace)
    removal = Removal(workspace=workspace, webhooks=_delete_webhooks(session, workspace.id))
    for account in session.scalars(select(WhatsAppAccount).where(
            WhatsAppAccount.workspace_id == workspace.id, WhatsAppAccount.deleted_at.is_(None))
            .order_by(WhatsAppAccount.id)).all():
        accounts.remove(session, account=account, force=True)
        removal.accounts.append(account.name)
    removal.api_keys = _revoke_api_keys(session, workspace.id)
    workspace.deleted_at = utcnow()
    session.flush()
    audit.record(session, command="workspace remove", target_type="workspace", target=workspace.name,
                 workspace_id=workspace.id, details={"force": force, "accounts": len(removal.accounts),
                                                     "webhooks": removal.webhooks, "api_keys": removal.api_keys})
    return removal


def _delete_webhooks(session: Session, workspace_id: int) -> int:
    from blazzctl.models import WebhookDelivery, WebhookEndpoint

    endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.workspace_id == workspace_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id.in_(endpoints))
                    .execution_options(synchronize_session=False))
    return session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.workspace_id == workspace_id)
                           .execution_options(synchronize_session=False)).rowcount


def _revoke_api_keys(session: Session, workspace_id: int) -> int:
    from blazzctl.models import ApiKey

    return session.execute(update(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None))
                           .values(revoked_at=db_now()).execution_options(synchronize_session=False)).rowcount


def _lock_live(session: Session, workspace: Workspace) -> None:
    """Lock the workspace row (account adds, primary changes and removals of it queue up behind)
    and make sure it was not removed meanwhile."""
    session.execute(select(Workspace.id).where(Workspace.id == workspace.id).with_for_update())
    session.refresh(workspace)
    if workspace.deleted_at is not None:
        raise NotFound(f"workspace {workspace.name!r} not found (it was just removed)",
                       hint="See `blazzctl workspace list`.")


def _ensure_name_free(session: Session, name: str) -> None:
    if find_live(session, name) is not None:
        raise Conflict(f"a workspace named {name!r} already exists", hint=_TAKEN_HINT)


def _flush_or_conflict(session: Session, name: str) -> None:
    try:
        session.flush()
    except exc.IntegrityError:  # the unique index caught a create or rename running alongside
        raise Conflict(f"a workspace named {name!r} already exists", hint=_TAKEN_HINT) from None
