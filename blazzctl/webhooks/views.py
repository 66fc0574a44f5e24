"""JSON shapes of `blazzctl webhook` output (secrets appear only in the output of ``add`` and ``rotate-secret``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from blazzctl.models import WebhookDelivery, WebhookEndpoint
from blazzctl.models.base import utcnow
from blazzctl.views import iso


def endpoint(ep: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    view = {"id": ep.id, "workspace_id": ep.workspace_id, "url": ep.url, "events": ep.events,
            "active": bool(ep.active), "created_at": iso(ep.created_at),
            "previous_secret_expires_at": iso(previous_secret_expiry(ep))}
    if with_secret:
        view["secret"] = ep.secret
    return view


def previous_secret_expiry(ep: WebhookEndpoint) -> datetime | None:
    """Until when the rotated-out secret still signs; None when there is none (or its grace is over)."""
    expires = ep.previous_secret_expires_at
    return expires if ep.previous_secret and expires is not None and expires > utcnow() else None


def delivery(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "type": d.event_type,
            "status": str(d.status), "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at),
            "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": iso(d.created_at), "delivered_at": iso(d.delivered_at)}
