"""What a sync writes: provider listings (the shapes of ``bridge.js``) mapped to rows, upserted in batches.

The functions take a session and write one batch each, so the daemon can fence every batch
with its lease and record progress in the same transaction, and the benchmark can time the
same code. Listings are mapped once (``chat_rows``, ``contact_rows``, ``group_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, or_, select, tuple_
from sqlalchemy.orm import Session

from blazzctl.enums import ChatType, ProviderType
from blazzctl.models import Chat, Contact, Group, GroupParticipant
from blazzctl.services.upserts import upsert

PREVIEW_CHARS = 500

CHAT_UPDATE = ("name", "chat_type", "unread_count", "last_message_at", "last_message", "archived", "updated_at")
CONTACT_UPDATE = ("lid", "phone_number", "name", "push_name", "is_business", "is_my_contact", "updated_at")
GROUP_UPDATE = ("name", "description", "owner_jid", "group_created_at", "settings", "participants_count",
                "updated_at")
PARTICIPANT_UPDATE = ("phone_number", "is_admin", "is_super_admin")


@dataclass(frozen=True)
class Scope:
    workspace_id: int
    account_id: int


def from_unix(t: Any) -> datetime | None:
    if not t:
        return None
    try:
        return datetime.fromtimestamp(int(t), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def phone_of(jid: str | None, number: str | None = None) -> str | None:
    """E.164 from a ``…@c.us`` jid (or its number), else None (groups, LIDs)."""
    user = number or (jid.split("@", 1)[0] if jid and jid.endswith("@c.us") else None)
    return f"+{user}" if user and user.isdigit() and 6 <= len(user) <= 15 else None


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def preview(message: dict | None) -> str | None:
    """The newest message as a short text: its body, or ``[type]`` for media without a caption."""
    if not message:
        return None
    body = message.get("body") or ""
    if body:
        return body[:PREVIEW_CHARS]
    kind = message.get("type") or "chat"
    return None if kind == "chat" else f"[{kind}]"


def select_chats(chats: Sequence[dict], *, window_days: int, max_chats: int, now: datetime) -> list[dict]:
    """The chats with a message within ``window_days``, newest first, at most ``max_chats``."""
    since = (now - timedelta(days=window_days)).timestamp()

    def last_t(chat: dict) -> float:
        return float(chat.get("t") or (chat.get("last") or {}).get("t") or 0)

    recent = [c for c in chats if c.get("id") and last_t(c) >= since]
    recent.sort(key=last_t, reverse=True)
    return recent[:max_chats]


def chat_rows(chats: Sequence[dict], scope: Scope, now: datetime) -> list[dict]:
    rows = []
    for c in chats:
        jid = c["id"]
        last = c.get("last") or None
        is_group = bool(c.get("is_group")) or jid.endswith("@g.us")
        rows.append({
            "workspace_id": scope.workspace_id, "whatsapp_account_id": scope.account_id, "jid": jid[:100],
            "chat_type": ChatType.GROUP.value if is_group else ChatType.PRIVATE.value,
            "provider_type": ProviderType.WEBJS.value, "name": _text(c.get("name"), 255),
            "unread_count": max(0, int(c.get("unread") or 0)),
            "last_message_at": from_unix(c.get("t") or (last or {}).get("t")), "last_message": preview(last),
            "archived": bool(c.get("archived")), "created_at": now, "updated_at": now})
    return rows


def contact_rows(contacts: Sequence[dict], scope: Scope, now: datetime) -> list[dict]:
    """One row per person: the page lists a user reached by LID and by phone number twice."""
    rows: list[dict] = []
    by_id: dict[str, dict] = {}
    for c in contacts:
        if not c.get("id"):
            continue
        jid = c["id"][:100]
        lid = c.get("lid") or (jid if jid.endswith("@lid") else None)
        phone = c.get("phone") or (jid if jid.endswith("@c.us") else None)
        row = {"workspace_id": scope.workspace_id, "whatsapp_account_id": scope.account_id,
               "jid": phone or jid, "lid": lid, "phone_number": phone_of(phone, c.get("number")),
               "name": _text(c.get("name"), 255), "push_name": _text(c.get("pushname"), 255),
               "is_business": bool(c.get("is_business")), "is_my_contact": bool(c.get("is_my_contact")),
               "created_at": now, "updated_at": now}
        same = next((by_id[i] for i in (lid, phone, jid) if i and i in by_id), None)
        if same is None:
            rows.append(row)
            same = row
        else:
            for key, value in row.items():
                if same.get(key) in (None, False) and value not in (None, False):
                    same[key] = value
        for i in (lid, phone, jid):
            if i:
                by_id[i] = same
    return rows


def group_rows(groups: Sequence[dict], scope: Scope, now: datetime) -> list[dict]:
    return [{"workspace_id": scope.workspace_id, "whatsapp_account_id": scope.account_id, "jid": g["id"][:100],
             "name": _text(g.get("subject"), 255), "description": _text(g.get("desc"), 65000),
             "owner_jid": _text(g.get("owner"), 100), "group_created_at": from_unix(g.get("creation")),
             "settings": {"announce": bool(g.get("announce")), "restrict": bool(g.get("restrict"))},
             "participants_count": len(g.get("participants") or []), "created_at": now, "updated_at": now}
            for g in groups if g.get("id")]


# --- batched writes ----------------------------------------------------------------------------


def write_chats(session: Session, rows: Sequence[dict]) -> int:
    return upsert(session, Chat.__table__, rows, keys=("whatsapp_account_id", "jid"), update=CHAT_UPDATE)


def write_contacts(session: Session, rows: Sequence[dict]) -> int:
    return upsert(session, Contact.__table__, _onto_stored(session, rows), keys=("whatsapp_account_id", "jid"),
                  update=CONTACT_UPDATE, keep=("lid", "phone_number", "name", "push_name"))


def _onto_stored(session: Session, rows: Sequence[dict]) -> list[dict]:
    """Rows keyed onto the contact already stored for the same person (found by its LID or
    phone-number id), so a contact first met by LID is completed, not duplicated."""
    if not rows:
        return []
    ids = {i for r in rows for i in (r["jid"], r["lid"]) if i}
    stored = session.execute(select(Contact.jid, Contact.lid).where(
        Contact.whatsapp_account_id == rows[0]["whatsapp_account_id"],
        or_(Contact.jid.in_(ids), Contact.lid.in_(ids)))).all()
    owner = {}
    for jid, lid in stored:
        owner.setdefault(jid, jid)
        if lid:
            owner.setdefault(lid, jid)
    out: dict[str, dict] = {}
    for r in rows:
        jid = owner.get(r["jid"]) or (owner.get(r["lid"]) if r["lid"] else None) or r["jid"]
        out.setdefault(jid, {**r, "jid": jid})
    return list(out.values())


def write_groups(session: Session, groups: Sequence[dict], scope: Scope, now: datetime) -> int:
    """Upsert a batch of groups and their participants (dropping members who left); returns participants."""
    rows = group_rows(groups, scope, now)
    if not rows:
        return 0
    upsert(session, Group.__table__, rows, keys=("whatsapp_account_id", "jid"), update=GROUP_UPDATE)
    ids = dict(session.execute(select(Group.jid, Group.id).where(
        Group.whatsapp_account_id == scope.account_id, Group.jid.in_([r["jid"] for r in rows]))).all())
    members = [{"group_id": ids[g["id"][:100]], "jid": p["id"][:100],
                "phone_number": phone_of(p.get("phone") or p["id"]),
                "is_admin": bool(p.get("is_admin")), "is_super_admin": bool(p.get("is_super_admin"))}
               for g in groups if g.get("id") and g["id"][:100] in ids
               for p in (g.get("participants") or []) if p.get("id")]
    upsert(session, GroupParticipant.__table__, members, keys=("group_id", "jid"), update=PARTICIPANT_UPDATE)
    session.execute(delete(GroupParticipant).where(
        GroupParticipant.group_id.in_(list(ids.values())),
        tuple_(GroupParticipant.group_id, GroupParticipant.jid).not_in([(m["group_id"], m["jid"]) for m in members]))
        .execution_options(synchronize_session=False))
    return len(members)
