"""JSON-ready views of synced rows (chats, contacts, groups) and of sync runs."""

from __future__ import annotations

from typing import Any

from blazzctl.views import iso


def chat(c) -> dict[str, Any]:
    return {"id": c.id, "whatsapp_account_id": c.whatsapp_account_id, "jid": c.jid, "chat_type": str(c.chat_type),
            "provider_type": str(c.provider_type), "name": c.name, "unread_count": c.unread_count,
            "last_message_at": iso(c.last_message_at), "last_message": c.last_message}


def contact(c) -> dict[str, Any]:
    return {"id": c.id, "whatsapp_account_id": c.whatsapp_account_id, "jid": c.jid, "lid": c.lid,
            "phone_number": c.phone_number,
            "name": c.name, "push_name": c.push_name, "is_business": bool(c.is_business),
            "is_my_contact": bool(c.is_my_contact), "updated_at": iso(c.updated_at)}


def group(g, participants) -> dict[str, Any]:
    return {"id": g.id, "whatsapp_account_id": g.whatsapp_account_id, "jid": g.jid, "name": g.name,
            "description": g.description, "owner_jid": g.owner_jid, "group_created_at": iso(g.group_created_at),
            "settings": g.settings, "participants_count": g.participants_count, "updated_at": iso(g.updated_at),
            "participants": [{"jid": p.jid, "phone_number": p.phone_number, "is_admin": bool(p.is_admin),
                              "is_super_admin": bool(p.is_super_admin)} for p in participants]}


def sync_run(run, account) -> dict[str, Any]:
    return {"id": run.id, "uuid": run.uuid, "whatsapp_account_id": run.whatsapp_account_id, "account": account.name,
            "workspace_id": account.workspace_id, "kind": str(run.kind), "status": str(run.status),
            "requested_by": run.requested_by, "handled_by": run.handled_by, "progress_done": run.progress_done,
            "progress_total": run.progress_total, "totals": run.totals, "error": run.error,
            "requested_at": iso(run.requested_at), "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at)}
