"""Deterministic chats, contacts and groups for a fake account (sync tests, memory benchmark)."""

from __future__ import annotations

import hashlib
import time

FIRST_NAMES = ["Ana", "Ben", "Carla", "Dev", "Eli", "Fatma", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena"]


def lid_for(user: str) -> str:
    """A stable fake LID (privacy id) for a phone-number user: 15 digits derived from it."""
    digest = hashlib.sha256(f"lid:{user}".encode()).hexdigest()
    return str(int(digest[:16], 16))[:15].rjust(15, "1")


def contact(user: str, name: str, *, my_contact: bool = True) -> dict:
    return {"id": f"{user}@c.us", "name": name if my_contact else None, "shortName": name.split()[0],
            "pushname": name, "isMyContact": my_contact, "isBusiness": False, "isEnterprise": False,
            "lid": f"{lid_for(user)}@lid"}


def seed_account(me: str, *, chats: int, groups: int, participants: int = 5, messages_per_chat: int = 2,
                 extra_contacts: int = 0, body_bytes: int = 40) -> dict:
    """Build {contacts, chats, groups, messages} for account ``me`` (digits)."""
    now = int(time.time())
    tag = me[-4:]  # keeps different accounts' generated contacts apart
    users = [f"1555{tag}{i:05d}" for i in range(max(chats, participants) + extra_contacts)]
    contacts = [contact(u, f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {i}") for i, u in enumerate(users)]
    out = {"contacts": contacts, "chats": [], "groups": [], "messages": []}
    filler = ("lorem ipsum dolor sit amet " * (1 + body_bytes // 27))[:body_bytes]
    for i in range(chats):
        remote = f"{users[i]}@c.us"
        out["chats"].append({"id": remote, "name": contacts[i]["name"], "t": now - i * 60, "unreadCount": i % 3})
        for k in range(messages_per_chat):
            from_me = k % 2 == 1
            out["messages"].append(_history_msg(me, remote, None, f"S{i:05d}{k:03d}", from_me,
                                                f"{filler} #{i}.{k}", now - i * 60 - k))
    for g in range(groups):
        gid = f"1203630{tag}{g:07d}@g.us"
        members = [f"{me}@c.us"] + [f"{users[(g + j) % len(users)]}@c.us" for j in range(participants - 1)]
        out["groups"].append({"id": gid, "subject": f"Group {g}", "owner": members[0], "creation": now - 86400,
                              "desc": f"Seeded group {g}", "announce": False, "restrict": False,
                              "participants": [{"id": m, "isAdmin": j == 0, "isSuperAdmin": j == 0}
                                               for j, m in enumerate(members)]})
        out["chats"].append({"id": gid, "name": f"Group {g}", "t": now - g * 30, "unreadCount": 0})
        for k in range(messages_per_chat):
            author = members[1 + k % (len(members) - 1)] if len(members) > 1 else members[0]
            out["messages"].append(_history_msg(me, gid, author, f"G{g:05d}{k:03d}", False,
                                                f"{filler} @{g}.{k}", now - g * 30 - k))
    return out


def _history_msg(me: str, remote: str, author: str | None, mid: str, from_me: bool, body: str, t: int) -> dict:
    return {"id": {"fromMe": from_me, "remote": remote, "id": mid, "participant": author},
            "from": f"{me}@c.us" if from_me else remote,
            "to": remote if from_me else f"{me}@c.us", "author": author, "body": body, "type": "chat",
            "t": t, "ack": 3 if from_me else 0, "notifyName": ""}
