"""events.record: the transactional outbox rows (SQLite and MariaDB)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from blazzctl.errors import InvalidInput
from blazzctl.models import WebhookDelivery, WebhookEndpoint, WhatsAppAccount
from blazzctl.services import events
from tests.webhook_support import add_endpoint, count, workspace_with_account


def sequence_of(db, account_id: int) -> int:
    with db.session() as session:
        return session.get(WhatsAppAccount, account_id).event_sequence


def test_without_subscribed_endpoints_nothing_is_written(database):
    ws, acc = workspace_with_account(database)
    add_endpoint(database, ws, "http://127.0.0.1:9/a", events=["message.received"])
    with database.session() as session:
        assert events.record(session, type="account.qr", workspace_id=ws, account_id=acc, data={}) is None
    assert count(database) == 0
    assert sequence_of(database, acc) == 0


def test_one_row_per_subscribed_active_endpoint_with_the_exact_payload(database):
    ws, acc = workspace_with_account(database)
    other_ws, _ = workspace_with_account(database, "other")
    everything, _ = add_endpoint(database, ws, "http://127.0.0.1:9/all")
    filtered, _ = add_endpoint(database, ws, "http://127.0.0.1:9/msg", events=["message.received"])
    add_endpoint(database, ws, "http://127.0.0.1:9/status", events=["account.status"])
    inactive, _ = add_endpoint(database, ws, "http://127.0.0.1:9/off")
    add_endpoint(database, other_ws, "http://127.0.0.1:9/other")
    with database.session() as session:
        session.get(WebhookEndpoint, inactive).active = False
    data = {"message_id": "ABC", "body": "héllo 👋", "from": "+6281234567890"}
    with database.session() as session:
        event_id = events.record(session, type="message.received", workspace_id=ws, account_id=acc, data=data)
    with database.session() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.endpoint_id)).all()
    assert [r.endpoint_id for r in rows] == [everything, filtered]
    assert {r.event_id for r in rows} == {event_id}
    assert rows[0].payload == rows[1].payload
    payload = json.loads(rows[0].payload)
    assert list(payload) == ["id", "type", "timestamp", "workspace_id", "whatsapp_account_id", "sequence", "data"]
    assert payload["id"] == event_id and payload["type"] == "message.received"
    assert (payload["workspace_id"], payload["whatsapp_account_id"], payload["sequence"]) == (ws, acc, 1)
    assert payload["data"] == data
    assert payload["timestamp"].endswith("Z")
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)


def test_sequence_increases_per_account(database):
    ws, acc = workspace_with_account(database)
    with database.session() as session:
        from blazzctl.services import accounts
        from blazzctl.services.refs import workspace

        acc2 = accounts.add(session, workspace=workspace(session, str(ws)), name="second").id
    add_endpoint(database, ws, "http://127.0.0.1:9/all")
    for account_id in (acc, acc, acc2, acc):
        with database.session() as session:
            events.record(session, type="account.status", workspace_id=ws, account_id=account_id,
                          data={"status": "connected"})
    with database.session() as session:
        seqs = session.execute(select(WebhookDelivery.whatsapp_account_id, WebhookDelivery.sequence)
                               .order_by(WebhookDelivery.id)).all()
    assert [tuple(r) for r in seqs] == [(acc, 1), (acc, 2), (acc2, 1), (acc, 3)]
    assert sequence_of(database, acc) == 3


def test_a_rolled_back_transaction_leaves_no_event(database):
    ws, acc = workspace_with_account(database)
    add_endpoint(database, ws, "http://127.0.0.1:9/all")
    with pytest.raises(RuntimeError):
        with database.session() as session:
            events.record(session, type="message.sent", workspace_id=ws, account_id=acc, data={})
            raise RuntimeError("the change that caused the event failed")
    assert count(database) == 0
    assert sequence_of(database, acc) == 0


def test_unknown_event_type_is_refused(database):
    ws, acc = workspace_with_account(database)
    with database.session() as session, pytest.raises(InvalidInput):
        events.record(session, type="message.deleted", workspace_id=ws, account_id=acc, data={})


@pytest.mark.mariadb
def test_the_claim_query_uses_the_due_index_without_filesort(mariadb_url):
    from blazzctl.db import Database
    from blazzctl.services import schema
    from blazzctl.webhooks.outbox import due_query

    db = Database(mariadb_url)
    try:
        schema.upgrade(db)
        ws, acc = workspace_with_account(db)
        add_endpoint(db, ws, "http://127.0.0.1:9/a")
        with db.session() as session:
            for i in range(200):
                events.record(session, type="message.received", workspace_id=ws, account_id=acc, data={"n": i})
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE TABLE webhook_deliveries")
            sql = str(due_query(50, skip_endpoints=[7]).compile(conn, compile_kwargs={"literal_binds": True}))
            plan = [dict(row._mapping) for row in conn.exec_driver_sql("EXPLAIN " + sql)]
    finally:
        db.dispose()
    assert "SKIP LOCKED" in sql
    (row,) = plan
    assert row["key"] == "ix_webhook_deliveries_due", plan
    assert "filesort" not in (row["Extra"] or ""), plan


def test_prune_deletes_only_delivered_rows_past_the_retention(database):
    from datetime import timedelta

    from sqlalchemy import update

    from blazzctl.models.base import utcnow
    from blazzctl.webhooks.outbox import prune

    ws, acc = workspace_with_account(database)
    add_endpoint(database, ws, "http://127.0.0.1:9/all")
    ids = []
    for _ in range(6):
        with database.session() as session:
            ids.append(events.record(session, type="message.sent", workspace_id=ws, account_id=acc, data={}))
    old, new = utcnow() - timedelta(days=3), utcnow() - timedelta(hours=1)
    plan = [("delivered", old), ("delivered", old), ("delivered", old), ("delivered", new), ("dead", old),
            ("pending", old)]
    with database.session() as session:
        for event_id, (status, at) in zip(ids, plan):
            session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
                            .values(status=status, next_attempt_at=at))
    assert prune(database, older_than_days=2, chunk=2) == 3
    with database.session() as session:
        left = session.execute(select(WebhookDelivery.event_id, WebhookDelivery.status)).all()
    assert sorted(left) == sorted([(ids[3], "delivered"), (ids[4], "dead"), (ids[5], "pending")])
