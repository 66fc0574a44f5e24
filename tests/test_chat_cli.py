"""`chat list`, `contact list`, `group show` on both dialects: keyset pages, filters, JSON shape, errors.

Rows are written with the sync's own batched upserts (``sync_store``), so these tests also
check the insert-or-update statements on SQLite and MariaDB.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from blazzctl.models import Chat, Contact, Group, GroupParticipant
from blazzctl.services import accounts, sync_store, workspaces

CHAT_KEYS = ["id", "whatsapp_account_id", "jid", "chat_type", "provider_type", "name", "unread_count",
             "last_message_at", "last_message"]
T0 = 1_780_000_000  # a fixed unix time: ordering, ties and NULLs are chosen, not random


def listing(n: int) -> list[dict]:
    """``n`` chats in bridge.js shape: every 4th a group, pairs sharing a time, two without any message."""
    chats = []
    for i in range(n):
        jid = f"1203630{i:011d}@g.us" if i % 4 == 0 else f"49155500{i:05d}@c.us"
        t = None if i in (3, 7) else T0 - (i // 2) * 60  # ties: i and i+1 share a time
        last = {"body": f"hello {i}", "type": "chat", "t": t} if t else None
        chats.append({"id": jid, "name": f"Chat {i}", "is_group": jid.endswith("@g.us"), "unread": i % 3,
                      "t": t, "archived": False, "last": last})
    return chats


@pytest.fixture
def synced(database):
    """An account with 23 chats, 30 contacts and one group of 4, written by the sync's upserts."""
    with database.session() as s:
        ws = workspaces.create(s, name="acme")
        acc = accounts.add(s, workspace=ws, name="sales")
        scope = sync_store.Scope(ws.id, acc.id)
        now = datetime.now(timezone.utc)
        sync_store.write_chats(s, sync_store.chat_rows(listing(23), scope, now))
        sync_store.write_contacts(s, sync_store.contact_rows(
            [{"id": f"4915550{i:06d}@c.us", "number": f"4915550{i:06d}", "name": f"C{i}", "pushname": None,
              "is_business": i == 0, "is_my_contact": True} for i in range(30)], scope, now))
        sync_store.write_groups(s, [{"id": "120363000000000000@g.us", "subject": "Team", "desc": "d",
                                     "owner": "4915550000000@c.us", "creation": T0, "announce": True,
                                     "restrict": False,
                                     "participants": [{"id": f"4915550{i:06d}@c.us", "is_admin": i < 2,
                                                       "is_super_admin": i == 0} for i in range(4)]}], scope, now)
    return database


def all_pages(cli, url, *args, limit=5, flag="--before"):
    seen, cursor, pages = [], None, 0
    while True:
        extra = [flag, str(cursor)] if cursor is not None else []
        result = cli(*args, "--limit", str(limit), *extra, "--json", db=url)
        assert result.code == 0, result
        page = result.json()
        pages += 1
        seen += page
        if len(page) < limit:
            return seen, pages
        cursor = page[-1]["id"]


def test_chat_list_pages_through_every_chat_once_newest_first(cli, synced):
    chats, pages = all_pages(cli, synced.url, "chat", "list", "sales")
    assert pages == 5
    assert len(chats) == 23 and len({c["id"] for c in chats}) == 23
    with synced.session() as s:
        expected = [c.id for c in s.scalars(select(Chat).order_by(Chat.last_message_at.desc(), Chat.id.desc()))]
    assert [c["id"] for c in chats] == expected
    assert [c["last_message_at"] is None for c in chats][-2:] == [True, True]  # no message: last
    assert list(chats[0]) == CHAT_KEYS


def test_chat_json_shape_and_values(cli, synced):
    chats = cli("chat", "list", "sales", "--workspace", "acme", "--limit", "1000", "--json", db=synced.url).json()
    first = next(c for c in chats if c["jid"] == "1203630" + "0" * 11 + "@g.us")
    assert first["chat_type"] == "group" and first["provider_type"] == "webjs"
    assert first["name"] == "Chat 0" and first["unread_count"] == 0 and first["last_message"] == "hello 0"
    assert first["last_message_at"] == datetime.fromtimestamp(T0, timezone.utc).isoformat().replace("+00:00", "Z")
    private = next(c for c in chats if c["jid"] == "4915550000001@c.us")
    assert private["chat_type"] == "private" and private["unread_count"] == 1


def test_chat_filters_page_too(cli, synced):
    groups, _ = all_pages(cli, synced.url, "chat", "list", "sales", "--type", "group", limit=2)
    assert sorted(int(c["name"].split()[1]) for c in groups) == [0, 4, 8, 12, 16, 20]
    unread, _ = all_pages(cli, synced.url, "chat", "list", "sales", "--unread", limit=3)
    assert len(unread) == sum(1 for i in range(23) if i % 3) and all(c["unread_count"] > 0 for c in unread)


def test_chat_list_errors(cli, synced):
    assert cli("chat", "list", "nobody", db=synced.url).code == 3
    bad_type = cli("chat", "list", "sales", "--type", "broadcast", db=synced.url)
    assert bad_type.code == 2 and "private or group" in bad_type.stderr
    bad_cursor = cli("chat", "list", "sales", "--before", "999999", db=synced.url)
    assert bad_cursor.code == 2 and "unknown cursor 999999" in bad_cursor.stderr


def test_chat_list_table(cli, synced):
    result = cli("chat", "list", "sales", "--limit", "3", db=synced.url)
    assert result.code == 0, result
    assert "LAST MESSAGE" in result.stdout and "hello 0" in result.stdout
    assert "next page: --before" in result.stdout
    as_json = cli("chat", "list", "sales", "--limit", "3", "--json", db=synced.url)
    assert len(json.loads(as_json.stdout)) == 3  # stdout stays pure JSON; the hint goes to stderr
    assert f"next page: --before {json.loads(as_json.stdout)[-1]['id']}" in as_json.stderr


def test_contact_list_pages(cli, synced):
    contacts, pages = all_pages(cli, synced.url, "contact", "list", "sales", limit=7, flag="--after")
    assert len(contacts) == 30 and pages == 5
    assert contacts[0]["phone_number"] == "+4915550000000" and contacts[0]["is_business"] is True


def test_group_show_with_participants(cli, synced):
    result = cli("group", "show", "sales", "120363000000000000", "--json", db=synced.url)
    assert result.code == 0, result
    group = result.json()
    assert group["name"] == "Team" and group["participants_count"] == 4
    assert group["settings"] == {"announce": True, "restrict": False}
    assert [p["is_super_admin"] for p in group["participants"]] == [True, False, False, False]
    assert sum(p["is_admin"] for p in group["participants"]) == 2
    table = cli("group", "show", "sales", "120363000000000000@g.us", db=synced.url)
    assert table.code == 0 and "superadmin" in table.stdout
    missing = cli("group", "show", "sales", "999@g.us", db=synced.url)
    assert missing.code == 3 and "not found" in missing.stderr


def test_upserts_update_in_place_and_drop_members_who_left(synced):
    """A second write of the same listing changes values, never adds rows; a member who left is gone."""
    with synced.session() as s:
        ws_id, acc_id = s.execute(select(Chat.workspace_id, Chat.whatsapp_account_id)).first()
        scope = sync_store.Scope(ws_id, acc_id)
        later = datetime.now(timezone.utc) + timedelta(seconds=5)
        chats = listing(23)
        chats[1]["unread"], chats[1]["name"] = 9, "Renamed"
        sync_store.write_chats(s, sync_store.chat_rows(chats, scope, later))
        sync_store.write_groups(s, [{"id": "120363000000000000@g.us", "subject": "Team 2",
                                     "participants": [{"id": "4915550000001@c.us", "is_admin": True}]}], scope, later)
    with synced.session() as s:
        assert s.scalar(select(func.count()).select_from(Chat)) == 23
        renamed = s.scalars(select(Chat).where(Chat.jid == "4915550000001@c.us")).one()
        assert (renamed.name, renamed.unread_count) == ("Renamed", 9)
        assert s.scalar(select(func.count()).select_from(Group)) == 1
        assert list(s.scalars(select(GroupParticipant.jid))) == ["4915550000001@c.us"]
        assert s.scalar(select(func.count()).select_from(Contact)) == 30


def test_select_chats_keeps_the_window_and_the_cap():
    now = datetime.fromtimestamp(T0, timezone.utc)
    chats = [{"id": f"{i}@c.us", "t": T0 - i * 86400} for i in range(40)] + [{"id": "x@c.us", "t": None}]
    picked = sync_store.select_chats(chats, window_days=30, max_chats=1000, now=now)
    assert [c["id"] for c in picked] == [f"{i}@c.us" for i in range(31)]
    assert len(sync_store.select_chats(chats, window_days=30, max_chats=10, now=now)) == 10
