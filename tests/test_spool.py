"""The inbound spool: durable files, replayed in order, with the values JSON lacks."""

from __future__ import annotations

from datetime import datetime, timezone

from daemons.session.spool import Spool


def test_events_come_back_in_order_with_bytes_and_datetimes(tmp_path):
    spool = Spool(tmp_path / "spool")
    when = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
    first = spool.put(7, "store", {"message": {"id": "A", "media_data": b"\x00\xffjpeg", "t": 1}})
    spool.put(7, "edit", {"wa_message_id": "A", "body": "fixed", "edited_at": when})
    spool.put(7, "ack", {"wa_message_id": "A", "ack": 3})
    spool.put(9, "revoke", {"wa_message_id": "B"})
    assert spool.accounts() == [7, 9] and len(spool) == 4
    entries = spool.pending(7)
    assert [e.op for e in entries] == ["store", "edit", "ack"]
    assert entries[0].args["message"]["media_data"] == b"\x00\xffjpeg"
    assert entries[1].args["edited_at"] == when
    assert (first.stat().st_mode & 0o777) == 0o600
    spool.done(entries[0])
    spool.done(entries[0])  # twice (two daemons of a host replaying): no error
    assert [e.op for e in spool.pending(7)] == ["edit", "ack"]
    for e in spool.pending(7):
        spool.done(e)
    assert spool.accounts() == [9]


def test_a_write_torn_by_a_crash_is_never_replayed_and_a_corrupt_file_is_set_aside(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(3, "ack", {"wa_message_id": "A", "ack": 2})
    folder = tmp_path / "spool" / "3"
    (folder / ".00000000000000000001-1-00000001.json.tmp").write_bytes(b'{"op": "st')  # died before rename
    (folder / "00000000000000000002-1-00000002.json").write_bytes(b"not json")
    entries = spool.pending(3)
    assert [e.op for e in entries] == ["ack"]
    assert (folder / "00000000000000000002-1-00000002.bad").exists()  # kept for a human, not lost


def test_late_writes_store_once_and_never_move_a_message_backwards(database):
    """Late writes (no lease: a page whose lease moved on, a spool replayed by another daemon)
    arrive in any order: a message is stored once, an older edit does not undo a newer one, and
    acks only move forward."""
    from datetime import timedelta

    from sqlalchemy import select

    from blazzctl.models import Message
    from blazzctl.services import accounts, workspaces
    from daemons.session import inbound

    with database.session() as s:
        account = accounts.add(s, workspace=workspaces.create(s, name="acme"), name="sales")
        s.flush()
        account_id = account.id
    wa_id = "false_6281234567890@c.us_LATE01"
    message = {"id": wa_id, "remote": "6281234567890@c.us", "from": "6281234567890@c.us", "type": "chat",
               "body": "first", "t": 1_790_000_000, "from_me": False}
    late = {"owner": "host-b:1", "epoch": None, "account_id": account_id}
    assert inbound.store(database, message=message, settings=None, **late) is True
    assert inbound.store(database, message=message, settings=None, **late) is False  # replayed: once
    t0 = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)
    assert inbound.edit(database, wa_message_id=wa_id, body="newer", edited_at=t0 + timedelta(seconds=5), **late)
    assert not inbound.edit(database, wa_message_id=wa_id, body="older", edited_at=t0, **late)
    with database.session() as s:
        rows = s.scalars(select(Message).where(Message.wa_message_id == wa_id)).all()
        assert [(m.body, [e["body"] for e in m.edits or []]) for m in rows] == [("newer", ["first"])]
