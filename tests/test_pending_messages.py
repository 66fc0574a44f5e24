"""Messages for accounts that cannot send: refused when never linked, queued with a warning when
disconnected, `--wait` saying why, cancelled (`message cancel`, or with a removed account), expired
after `messages.pending_ttl` (also for an account no daemon owns), and `message list` naming
each row's account. Service-level tests run on both dialects; daemon tests on MariaDB.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import func, select, update

from tests.daemon_helpers import Fleet, migrate, wait_for
from tests.test_messages import PHONE, mark_linked


@pytest.fixture
def acme(cli, migrated_url):
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=migrated_url).code == 0
    return migrated_url


def send(cli, url, *args, account="sales", workspace="acme"):
    return cli("message", "send", account, "--workspace", workspace, "--to", PHONE, *args, db=url)


def rows(database, model, *where):
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def status_events(database) -> list[dict]:
    from blazzctl.models import WebhookDelivery

    with database.session() as s:
        return [json.loads(p)["data"] for p in s.scalars(select(WebhookDelivery.payload).where(
            WebhookDelivery.event_type == "message.status").order_by(WebhookDelivery.id))]


def age(database, message_id: int, hours: float) -> None:
    """Pretend the message was queued ``hours`` ago."""
    from blazzctl.models import Message
    from blazzctl.models.base import utcnow

    with database.session() as s:
        s.execute(update(Message).where(Message.id == message_id)
                  .values(created_at=utcnow() - timedelta(hours=hours)))


# --- sending to an account that cannot send -----------------------------------------------------------

def test_an_account_never_linked_is_refused_and_nothing_is_queued(cli, acme, database):
    from blazzctl.models import Message

    r = send(cli, acme, "--text", "hi")
    assert r.code == 1, r
    assert "not linked to a phone" in r.stderr and "blazzctl account connect sales --workspace acme" in r.stderr
    assert rows(database, Message) == 0
    # Bad input is still a usage error first.
    assert send(cli, acme, "--text", "").code == 2


def test_a_logged_out_account_is_not_linked_any_more(cli, acme, database):
    mark_linked(acme, "sales", status="disconnected")
    r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "5", db=acme)
    assert r.code == 0, r
    r = send(cli, acme, "--text", "hi")
    assert r.code == 1 and "not linked" in r.stderr, r


def test_a_disconnected_account_queues_with_a_warning_and_wait_says_why(cli, acme):
    mark_linked(acme, "sales", status="disconnected", status_reason="operator disconnect")
    r = send(cli, acme, "--text", "hi", "--json")
    assert r.code == 0, r
    assert r.json()["status"] == "pending"
    assert "warning: account 'sales' is disconnected (operator disconnect)" in r.stderr
    assert "up to 1 d (messages.pending_ttl)" in r.stderr and "blazzctl account connect sales" in r.stderr

    r = send(cli, acme, "--text", "hi again", "--wait", "--timeout", "1")
    assert r.code == 1, r
    assert "still pending after 1 s: account sales is disconnected (operator disconnect)" in r.stderr


def test_a_connected_account_queues_without_a_warning(cli, acme):
    mark_linked(acme, "sales")
    r = send(cli, acme, "--text", "hi")
    assert r.code == 0 and "warning" not in r.stderr, r


# --- idempotency keys --------------------------------------------------------------------------------

def test_an_idempotency_key_reused_for_another_message_is_refused(cli, acme, database, tmp_path):
    from blazzctl.models import Message

    mark_linked(acme, "sales")
    first = send(cli, acme, "--text", "order 42 shipped", "--idempotency-key", "order-42", "--json")
    assert first.code == 0, first
    first_id = first.json()["id"]
    for args in (["--text", "order 43 shipped"], ["--text", "order 42 shipped", "--reply-to", "X"]):
        r = send(cli, acme, *args, "--idempotency-key", "order-42")
        assert r.code == 4, r
        assert f"already used for another message (message {first_id} " in r.stderr
    other = cli("message", "send", "sales", "--workspace", "acme", "--to", "+62 812-9999-0000", "--text",
                "order 42 shipped", "--idempotency-key", "order-42", db=acme)
    assert other.code == 4, other
    again = send(cli, acme, "--text", "order 42 shipped", "--idempotency-key", "order-42", "--json")
    assert again.code == 0 and again.json()["id"] == first_id, again
    assert rows(database, Message) == 1

    file = tmp_path / "a.pdf"
    file.write_bytes(b"%PDF-1.4 one")
    assert send(cli, acme, "--media", str(file), "--idempotency-key", "doc").code == 0
    file.write_bytes(b"%PDF-1.4 another one")
    r = send(cli, acme, "--media", str(file), "--idempotency-key", "doc")
    assert r.code == 4, r


# --- message cancel ----------------------------------------------------------------------------------

def test_message_cancel(cli, acme, database):
    from blazzctl.models import Message

    mark_linked(acme, "sales", status="disconnected")
    assert cli("webhook", "add", "--workspace", "acme", "https://hooks.example.com/x", db=acme).code == 0
    ids = [send(cli, acme, "--text", f"m{i}", "--json").json()["id"] for i in range(4)]
    with database.session() as s:
        s.execute(update(Message).where(Message.id == ids[3]).values(status="sent"))

    def cancel(*refs):
        return cli("message", "cancel", "sales", *map(str, refs), "--workspace", "acme", "--json", db=acme)

    r = cancel(ids[0], 999999)  # under --json, the error is JSON on stdout
    assert r.code == 3 and "no message 999999 of account 'sales'" in r.json()["error"]["message"], r
    r = cancel(ids[0], ids[3])
    error = r.json()["error"]
    assert r.code == 4 and f"message {ids[3]} (sent)" in error["message"], r
    assert "nothing was cancelled" in error["message"] + error.get("hint", ""), r
    assert rows(database, Message, Message.status == "pending") == 3  # all or none

    r = cancel(ids[0], ids[1])
    assert r.code == 0, r
    assert [(m["id"], m["status"], m["error"]) for m in r.json()] == [
        (ids[0], "cancelled", "cancelled_by_operator"), (ids[1], "cancelled", "cancelled_by_operator")]
    assert cancel(ids[0]).code == 4  # not pending any more
    # A message of another account is unknown here.
    assert cli("account", "add", "--workspace", "acme", "--name", "support", db=acme).code == 0
    mark_linked(acme, "support")
    other = send(cli, acme, "--text", "x", "--json", account="support").json()["id"]
    assert cancel(other).code == 3
    assert [(e["message_id"], e["status"]) for e in status_events(database)] == [
        (ids[0], "cancelled"), (ids[1], "cancelled")]


def test_unknown_messages_are_resent_or_cancelled_by_the_operator_all_or_none(cli, acme, database):
    """`unknown`: handed to a page that is gone with no evidence either way. `message resend` queues
    it again with a fresh WhatsApp id; `message cancel` drops it; anything else is refused whole."""
    from blazzctl.models import Message

    mark_linked(acme, "sales", status="disconnected")
    assert cli("webhook", "add", "--workspace", "acme", "https://hooks.example.com/x", db=acme).code == 0
    ids = [send(cli, acme, "--text", f"u{i}", "--json").json()["id"] for i in range(3)]
    with database.session() as s:
        for i in ids[:2]:
            s.execute(update(Message).where(Message.id == i).values(
                status="unknown", wa_message_id=f"true_x_3EB0OLD{i}", attempts=2, error="handed to a page that is gone"))

    def run(command, *refs):
        return cli("message", command, "sales", *map(str, refs), "--workspace", "acme", "--json", db=acme)

    r = run("resend", ids[0], ids[2])  # ids[2] is pending, not unknown: nothing is queued
    assert r.code == 4 and f"message {ids[2]} (pending)" in r.json()["error"]["message"], r
    assert rows(database, Message, Message.status == "unknown") == 2
    assert run("resend", 999999).code == 3
    r = run("resend", ids[0])
    assert r.code == 0, r
    assert [(m["id"], m["status"], m["error"]) for m in r.json()] == [(ids[0], "pending", None)]
    with database.session() as s:
        m = s.get(Message, ids[0])
        assert (m.wa_message_id, m.attempts) == (None, 0)  # a new id when it is sent: a new message
    r = run("cancel", ids[1])
    assert r.code == 0 and r.json()[0]["status"] == "cancelled", r
    assert run("resend", ids[1]).code == 4  # cancelled: not unknown any more
    assert [(e["message_id"], e["status"]) for e in status_events(database)][-2:] == [
        (ids[0], "pending"), (ids[1], "cancelled")]


def test_removing_an_account_cancels_its_pending_messages_without_events(cli, acme, database, tmp_path):
    from blazzctl.models import Message, MessageMediaChunk

    mark_linked(acme, "sales", status="disconnected")
    assert cli("webhook", "add", "--workspace", "acme", "https://hooks.example.com/x", db=acme).code == 0
    file = tmp_path / "a.pdf"
    file.write_bytes(b"%PDF-1.4")
    ids = [send(cli, acme, "--text", f"m{i}", "--json").json()["id"] for i in range(3)]
    ids.append(send(cli, acme, "--media", str(file), "--json").json()["id"])
    with database.session() as s:
        s.execute(update(Message).where(Message.id == ids[0]).values(status="sent"))
    assert cli("account", "remove", "sales", "--workspace", "acme", "--yes", db=acme).code == 0
    with database.session() as s:
        states = dict(s.execute(select(Message.id, Message.status)).all())
        errors = dict(s.execute(select(Message.id, Message.error)).all())
    assert states == {ids[0]: "sent", ids[1]: "cancelled", ids[2]: "cancelled", ids[3]: "cancelled"}
    assert errors[ids[1]] == "account_removed"
    assert rows(database, MessageMediaChunk) == 0
    assert status_events(database) == []


# --- expiry ------------------------------------------------------------------------------------------

def test_overdue_pending_messages_expire_once_with_one_event_each(cli, acme, database):
    from blazzctl.models import Message
    from blazzctl.services import pending

    mark_linked(acme, "sales", status="disconnected")
    assert cli("webhook", "add", "--workspace", "acme", "https://hooks.example.com/x", db=acme).code == 0
    ids = [send(cli, acme, "--text", f"m{i}", "--json").json()["id"] for i in range(4)]
    age(database, ids[0], 25)
    age(database, ids[1], 30)
    age(database, ids[3], 23)
    with database.session() as s:
        s.execute(update(Message).where(Message.id == ids[1]).values(status="sending"))  # maybe sent: kept
    for _ in range(2):  # twice: the second pass finds nothing more
        with database.session() as s:
            pending.expire_overdue(s, ttl=24 * 3600)
    with database.session() as s:
        found = {m.id: (m.status, m.error) for m in s.scalars(select(Message))}
    assert found == {ids[0]: ("failed", "expired"), ids[1]: ("sending", None), ids[2]: ("pending", None),
                     ids[3]: ("pending", None)}
    assert [(e["message_id"], e["status"], e["error"]) for e in status_events(database)] == [
        (ids[0], "failed", "expired")]


# --- message list across accounts --------------------------------------------------------------------

def test_message_list_names_each_rows_account(cli, acme):
    mark_linked(acme, "sales")
    assert cli("workspace", "create", "globex", db=acme).code == 0
    assert cli("account", "add", "--workspace", "globex", "--name", "sales", db=acme).code == 0
    assert cli("account", "add", "--workspace", "globex", "--name", "support", db=acme).code == 0
    mark_linked(acme, "support")
    for ws, name, text in (("acme", "sales", "one"), ("globex", "support", "two")):
        assert send(cli, acme, "--text", text, account=name, workspace=ws).code == 0
    listed = cli("message", "list", "--json", db=acme).json()
    assert [(m["account"], m["body"]) for m in listed] == [("support", "two"), ("sales", "one")]
    # Across workspaces the table qualifies the name (account names repeat across workspaces).
    table = cli("message", "list", db=acme, env={"COLUMNS": "200"}).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "TIME", "ACCOUNT"]
    assert [line.split()[2] for line in table[1:]] == ["globex/support", "acme/sales"]
    one = cli("message", "list", "--workspace", "globex", db=acme, env={"COLUMNS": "200"}).stdout.splitlines()
    assert [line.split()[2] for line in one[1:]] == ["support"]


# --- through a daemon ---------------------------------------------------------------------------------

@pytest.mark.mariadb
def test_a_daemon_expires_messages_of_accounts_nobody_owns_and_never_sends_late(cli, tmp_path, mariadb_url):
    from blazzctl.db import Database
    from blazzctl.models import Message

    migrate(mariadb_url)
    fleet = Fleet(tmp_path / "fleet", mariadb_url)
    config = fleet.config_for("host-a")
    doc = yaml.safe_load(config.read_text())
    doc["providers"]["webjs"]["options"]["outbox"] = str(fleet.root / "outbox.jsonl")
    doc["messages"] = {"rate_per_minute": 0, "poll_interval": 0.1, "pending_ttl": 3600}
    config.write_text(yaml.safe_dump(doc))
    database = Database(mariadb_url)
    try:
        with fleet:
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            for name in ("idle", "sales"):
                assert cli("account", "add", "--workspace", "acme", "--name", name, db=mariadb_url).code == 0
                mark_linked(mariadb_url, name, status="disconnected")
            late = send(cli, mariadb_url, "--text", "late", "--json").json()["id"]
            fresh = send(cli, mariadb_url, "--text", "fresh", "--json").json()["id"]
            orphan = send(cli, mariadb_url, "--text", "nobody sends me", "--json", account="idle").json()["id"]
            age(database, late, 2)
            age(database, orphan, 2)
            fleet.start(1)
            # "idle" stays disconnected (no daemon owns it): its message expires all the same.
            wait_for(lambda: _status(database, orphan) == "failed", 30, message=lambda: fleet.logs(30))
            assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code == 0
            wait_for(lambda: _status(database, fresh) == "sent", 30, message=lambda: fleet.logs(30))
            with database.session() as s:
                got = {m.id: (m.status, m.error) for m in s.scalars(select(Message))}
            assert got[late] == ("failed", "expired") and got[orphan] == ("failed", "expired")
            outbox = [json.loads(line) for line in (fleet.root / "outbox.jsonl").read_text().splitlines()]
            assert [o["body"] for o in outbox] == ["fresh"]  # the overdue message was never sent
    finally:
        database.dispose()


def _status(database, message_id: int) -> str:
    from blazzctl.models import Message

    with database.session() as s:
        return s.scalar(select(Message.status).where(Message.id == message_id))
