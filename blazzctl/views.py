"""JSON-ready views of rows: the exact shape every ``--json`` output uses."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from blazzctl.models import AuditEvent, WhatsAppAccount, Workspace


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    if value is None:
        return None
    if value.tzinfo is timezone.utc:  # what the database gives (db.UTCDateTime): 5x faster than isoformat
        return _UTC_SECONDS % (value.year, value.month, value.day, value.hour, value.minute, value.second)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


_UTC_SECONDS = "%04d-%02d-%02dT%02d:%02d:%02dZ"


def workspace(ws: Workspace) -> dict[str, Any]:
    return {"id": ws.id, "uuid": ws.uuid, "name": ws.name, "created_at": iso(ws.created_at)}


# The columns ``account`` reads: what a list selects instead of whole rows (services.accounts.account_views).
ACCOUNT_COLUMNS = ("id", "uuid", "workspace_id", "name", "session_id", "phone_number", "provider_type", "status",
                   "is_primary", "desired_state", "owner", "connected_at", "last_activity_at", "created_at",
                   "auth_saved_at", "status_reason", "status_changed_at", "last_error", "wa_version")


def account(acc: WhatsAppAccount, workspace_name: str | None = None) -> dict[str, Any]:
    """An account (a model, or a row of ``ACCOUNT_COLUMNS`` with ``workspace_name`` given)."""
    return account_values(tuple(getattr(acc, c) for c in ACCOUNT_COLUMNS),
                          workspace_name if workspace_name is not None else acc.workspace.name)


def account_values(values: Sequence[Any], workspace_name: str) -> dict[str, Any]:
    """An account from the values of ``ACCOUNT_COLUMNS`` in that order (a row, read lean)."""
    (id_, uuid, workspace_id, name, session_id, phone_number, provider_type, status, is_primary, desired_state,
     owner, connected_at, last_activity_at, created_at, auth_saved_at, status_reason, status_changed_at,
     last_error, wa_version) = values
    return {
        "id": id_, "uuid": uuid, "workspace_id": workspace_id, "workspace": workspace_name,
        "name": name, "session_id": session_id, "phone_number": phone_number,
        "provider_type": str(provider_type), "status": str(status), "is_primary": bool(is_primary),
        "desired_state": str(desired_state), "owner": owner,
        "connected_at": iso(connected_at), "last_activity_at": iso(last_activity_at),
        "created_at": iso(created_at), "auth_saved_at": iso(auth_saved_at),
        # why it is in its state
        "status_reason": status_reason, "status_changed_at": iso(status_changed_at),
        "last_error": last_error, "wa_version": wa_version,
    }


def daemon(view) -> dict[str, Any]:
    """A ``services.daemons.DaemonView``."""
    d = view.daemon
    return {"name": d.name, "host": d.host, "instance": d.instance, "pid": d.pid, "status": str(d.status),
            "live": view.live, "heartbeat_at": iso(d.heartbeat_at),
            "heartbeat_age_s": round(view.heartbeat_age, 1) if view.heartbeat_age is not None else None,
            "accounts_owned": d.accounts_owned, "capacity": d.capacity, "rss_bytes": d.rss_bytes,
            "pss_bytes": d.pss_bytes,
            "process_count": d.process_count, "cpu_percent": d.cpu_percent, "version": d.version,
            "status_text": d.status_text, "started_at": iso(d.started_at), "last_error": d.last_error}


def audit_event(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "workspace_id": event.workspace_id, "os_user": event.os_user,
            "sudo_user": event.sudo_user, "command": event.command, "target_type": event.target_type,
            "target": event.target, "details": event.details, "created_at": iso(event.created_at)}


def message(msg, account: str | None = None) -> dict[str, Any]:
    """``account``: the account's name (messages carry only its id)."""
    return {"id": msg.id, "uuid": msg.uuid, "whatsapp_account_id": msg.whatsapp_account_id, "account": account,
            "chat_jid": msg.chat_jid,
            "direction": str(msg.direction), "type": msg.type, "body": msg.body, "status": str(msg.status),
            "ack": msg.ack, "wa_message_id": msg.wa_message_id, "idempotency_key": msg.idempotency_key,
            "error": msg.error, "created_at": iso(msg.created_at), "sent_at": iso(msg.sent_at),
            "delivered_at": iso(msg.delivered_at), "read_at": iso(msg.read_at), "edited_at": iso(msg.edited_at),
            "revoked_at": iso(msg.revoked_at), "edits": msg.edits or []}
