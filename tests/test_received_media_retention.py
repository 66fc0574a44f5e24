"""Received media in the database: `prune_received` deletes the bytes of received messages past
`messages.media_retention_days`, and nothing else (outbound media waiting to be sent stays)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from blazzctl.db import Database
from blazzctl.enums import Direction, MessageStatus
from blazzctl.models import Message, MessageMediaChunk, WhatsAppAccount, Workspace
from blazzctl.services import message_media


def test_prune_deletes_only_received_media_past_the_retention(migrated_url):
    db = Database(migrated_url)
    now = datetime.now(timezone.utc)
    with db.session() as s:
        ws = Workspace(name="acme")
        s.add(ws)
        s.flush()
        acc = WhatsAppAccount(workspace_id=ws.id, name="sales", session_id="s-1")
        s.add(acc)
        s.flush()
        rows = {}
        for name, direction, age in (("old_in", Direction.IN, 40), ("new_in", Direction.IN, 1),
                                     ("old_out", Direction.OUT, 40)):
            m = Message(workspace_id=ws.id, whatsapp_account_id=acc.id, chat_jid="6281234567890@c.us",
                        direction=direction, type="image", media_mimetype="image/png",
                        status=MessageStatus.RECEIVED if direction == Direction.IN else MessageStatus.PENDING,
                        created_at=now - timedelta(days=age))
            s.add(m)
            s.flush()
            message_media.store_bytes(s, message_id=m.id, data=b"x" * (600 * 1024))  # two chunks
            rows[name] = m.id
    assert message_media.prune_received(db, older_than_days=30) == 1
    with db.session() as s:
        left = dict(s.execute(select(MessageMediaChunk.message_id, func.count())
                              .group_by(MessageMediaChunk.message_id)).all())
        assert left == {rows["new_in"]: 2, rows["old_out"]: 2}
        assert message_media.load(s, rows["new_in"]) == b"x" * (600 * 1024)
    db.dispose()
