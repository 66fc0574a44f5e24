"""API keys of the HTTP API: create (the token is shown once), list, revoke, and find by token.

A token is ``blz_`` + 32 random bytes in base64url (43 characters). Only its SHA-256 is stored:
with 256 random bits there is nothing to guess, so a slow password hash (bcrypt, argon2) would
only cost every request time without making a stolen table any less useless (docs/api.md).
A key belongs to one workspace and carries scopes; it sees nothing of other workspaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit
from blazzctl.views import iso

PREFIX = "blz_"
SCOPES = ("accounts:read", "accounts:write", "messages:read", "messages:send", "webhooks:manage", "sync:run")
MAX_DAYS = 3650
_TOKEN = re.compile(r"^blz_[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: list[str]) -> list[str]:
    """Known scopes, each once, in the order given; at least one."""
    hint = f"Give --scope once per scope, from: {', '.join(SCOPES)}."
    chosen: list[str] = []
    for scope in (s.strip() for part in scopes for s in part.split(",")):
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}", hint=hint)
        if scope not in chosen:
            chosen.append(scope)
    if not chosen:
        raise InvalidInput("an API key needs at least one scope", hint=hint)
    return chosen


def create(session: Session, *, workspace: Workspace, name: str, scopes: list[str],
           expires_days: int | None = None) -> tuple[Any, str]:
    """A new key of ``workspace``; returns (key, token). The token is never stored nor shown again."""
    from blazzctl.models import ApiKey

    name = validate.name(name, what="API key name")
    chosen = parse_scopes(scopes)
    if expires_days is not None and not 1 <= expires_days <= MAX_DAYS:
        raise InvalidInput(f"--expires must be from 1 to {MAX_DAYS} days, not {expires_days}")
    session.execute(select(Workspace.id).where(Workspace.id == workspace.id).with_for_update())
    if session.scalars(select(ApiKey.id).where(ApiKey.workspace_id == workspace.id, ApiKey.name == name,
                                               ApiKey.revoked_at.is_(None))).first() is not None:
        raise Conflict(f"workspace {workspace.name!r} has an API key named {name!r} already",
                       hint="Choose another name, or revoke that key first (`blazzctl apikey revoke`).")
    token = new_token()
    key = ApiKey(workspace_id=workspace.id, name=name, prefix=token[:12], token_hash=token_hash(token),
                 scopes=chosen, expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
                 created_by=audit.os_user()[:100])
    session.add(key)
    session.flush()
    audit.record(session, command="apikey create", target_type="apikey", target=str(key.id),
                 workspace_id=workspace.id, details={"name": name, "scopes": chosen, "expires_days": expires_days})
    return key, token


def list_keys(session: Session, *, workspace: Workspace | None = None, revoked: bool = False) -> list:
    """Keys in id order, of one workspace or of all; revoked ones only when asked."""
    from blazzctl.models import ApiKey

    query = select(ApiKey).order_by(ApiKey.id)
    if workspace is not None:
        query = query.where(ApiKey.workspace_id == workspace.id)
    if not revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def get(session: Session, ref: str, *, workspace: Workspace | None = None):
    """A key by id, prefix (``blz_…``, as listed) or name (within ``workspace`` when given)."""
    from blazzctl.models import ApiKey

    validate.reference(ref, what="API key")
    query = select(ApiKey)
    if workspace is not None:
        query = query.where(ApiKey.workspace_id == workspace.id)
    if ref.isdigit():
        found = session.scalars(query.where(ApiKey.id == int(ref))).first()
    elif ref.startswith(PREFIX):
        found = session.scalars(query.where(ApiKey.prefix == ref[:12])).first()
    else:
        rows = session.scalars(query.where(ApiKey.name == ref, ApiKey.revoked_at.is_(None)).limit(2)).all()
        if len(rows) > 1:
            raise InvalidInput(f"API key name {ref!r} exists in several workspaces",
                               hint="Give --workspace, or use the key's id.")
        found = rows[0] if rows else None
    if found is None:
        raise NotFound(f"API key {ref!r} not found", hint="See `blazzctl apikey list`.")
    return found


def revoke(session: Session, *, key) -> Any:
    """Revoke a key at once (every API worker refuses it within its cache time, a few seconds)."""
    if key.revoked_at is not None:
        raise Conflict(f"API key {key.id} ({key.name}) was revoked already at {iso(key.revoked_at)}")
    key.revoked_at = utcnow()
    session.flush()
    audit.record(session, command="apikey revoke", target_type="apikey", target=str(key.id),
                 workspace_id=key.workspace_id, details={"name": key.name})
    return key


def find(session: Session, token: str):
    """The live (not revoked, not expired) key with this token, or None."""
    from blazzctl.models import ApiKey

    if not _TOKEN.match(token or ""):
        return None
    digest = token_hash(token)
    key = session.scalars(select(ApiKey).where(ApiKey.token_hash == digest)).first()
    # compare_digest: the index found the row; this keeps the final check constant-time anyway.
    if key is None or not hmac.compare_digest(key.token_hash, digest) or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return None
    return key


def touch(session: Session, *, key_id: int, when: datetime | None = None) -> None:
    """Record that the key was used (callers do it at most once a minute per key: a write per
    request would cost more than the request)."""
    from blazzctl.models import ApiKey

    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when or utcnow())
                    .execution_options(synchronize_session=False))


def view(key, workspace_name: str | None = None) -> dict[str, Any]:
    """The JSON shape of a key (never its token nor its hash)."""
    return {"id": key.id, "uuid": key.uuid, "workspace_id": key.workspace_id, "workspace": workspace_name,
            "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes or []),
            "expires_at": iso(key.expires_at), "revoked_at": iso(key.revoked_at),
            "last_used_at": iso(key.last_used_at), "created_by": key.created_by, "created_at": iso(key.created_at)}
