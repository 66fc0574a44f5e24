"""JSON shapes of `blazzctl webhook` output (secrets appear only in ``add``'s output)."""

from __future__ import annotations

from typing import Any

from blazzctl.models import WebhookDelivery, WebhookEndpoint
from blazzctl.views import iso


def endpoint(ep: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    view = {"id": ep.id, "workspace_id": ep.workspace_id, "url": ep.url, "events": ep.events,
            "active": bool(ep.active), "created_at": iso(ep.created_at)}
    if with_secret:
        view["secret"] = ep.secret
    return view


def delivery(d: WebhookDelivery) -> dict[str, Any]:
    return {"id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "type": d.event_type,
            "status": str(d.status), "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at),
            "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": iso(d.created_at), "delivered_at": iso(d.delivered_at)}
