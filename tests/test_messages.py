"""Messages: `message send` validation and idempotency, `message list` pages (both dialects),
and sending through real daemons with the fake provider: acks, not-on-WhatsApp, the rate
limit, SIGKILLs in the middle of sending that neither lose nor duplicate a message, and media
bytes stored with the message.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest
import yaml
from sqlalchemy import func, select

from blazzctl.models.auth_archive import CHUNK_BYTES
from tests.daemon_helpers import Fleet, migrate, wait_for

PHONE = "+62 812-3456-7890"


@pytest.fixture
def acme(cli, migrated_url):
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=migrated_url).code == 0
    mark_linked(migrated_url, "sales")
    return migrated_url


def mark_linked(url: str, name: str, status: str = "connected", **values) -> None:
    """As if the account had connected once (a phone linked it): messages to it are accepted."""
    from sqlalchemy import update

    from blazzctl.db import Database
    from blazzctl.models import WhatsAppAccount
    from blazzctl.models.base import utcnow

    db = Database(url)
    try:
        with db.session() as s:
            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == name)
                      .values(connected_at=utcnow(), status=status, **values))
    finally:
        db.dispose()


def send(cli, url, *args, env: dict | None = None):
    return cli("message", "send", "sales", "--workspace", "acme", *args, db=url, env=env)


def test_send_queues_a_pending_message_with_the_json_keys(cli, acme):
    r = send(cli, acme, "--to", PHONE, "--text", "hello 🚀 'quoted'", "--json")
    assert r.code == 0, r
    body = r.json()
    assert list(body) == ["id", "uuid", "whatsapp_account_id", "account", "chat_jid", "direction", "type", "body",
                          "status",
                          "ack", "wa_message_id", "idempotency_key", "error", "created_at", "sent_at",
                          "delivered_at", "read_at", "edited_at", "revoked_at", "edits"]
    assert (body["chat_jid"], body["direction"], body["status"], body["body"]) == (
        "6281234567890@c.us", "out", "pending", "hello 🚀 'quoted'")


@pytest.mark.parametrize("args, message", [
    (["--to", "garbage", "--text", "x"], "not a valid phone number"),
    (["--to", "123@nowhere", "--text", "x"], "not a WhatsApp chat id"),
    (["--to", PHONE], "exactly one of --text and --media"),
    (["--to", PHONE, "--text", "x", "--media", "/etc/hostname"], "exactly one of --text and --media"),
    (["--to", PHONE, "--media", "/no/such/file.jpg"], "does not exist"),
    (["--to", PHONE, "--text", "x", "--caption", "c"], "--caption goes with --media"),
    (["--to", PHONE, "--text", ""], "1 to 65536 characters"),
    (["--to", PHONE, "--text", "x", "--wait", "--until", "seen"], "--until"),
])
def test_invalid_sends_exit_2_and_write_nothing(cli, acme, args, message):
    r = send(cli, acme, *args)
    assert r.code == 2, r
    assert message in r.stderr
    assert cli("message", "list", "--json", db=acme).json() == []


def test_media_over_the_limit_is_refused(cli, acme, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (2 * 1024 * 1024))
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", PHONE, "--media", str(big), db=acme,
            env={"BLAZZ_MESSAGES_MEDIA_MAX_MB": "{image: 1}"})
    assert r.code == 2 and "limit for image is 1 MB" in r.stderr, r
    ok = send(cli, acme, "--to", "6281234567890@c.us", "--media", str(big), "--caption", "pic", "--json")
    assert ok.code == 0, ok
    assert (ok.json()["type"], ok.json()["body"]) == ("image", "pic")


def test_unknown_account_is_not_found(cli, acme):
    r = cli("message", "send", "nobody", "--workspace", "acme", "--to", PHONE, "--text", "x", db=acme)
    assert r.code == 3


def test_idempotency_key_returns_the_same_message(cli, acme):
    first = send(cli, acme, "--to", PHONE, "--text", "once", "--idempotency-key", "order-42", "--json")
    second = send(cli, acme, "--to", PHONE, "--text", "once", "--idempotency-key", "order-42", "--json")
    assert first.code == second.code == 0
    assert first.json()["id"] == second.json()["id"]
    assert len(cli("message", "list", "--json", db=acme).json()) == 1


def test_list_pages_with_a_cursor(cli, acme):
    for i in range(7):
        assert send(cli, acme, "--to", PHONE, "--text", f"m{i}").code == 0
    page1 = cli("message", "list", "sales", "--workspace", "acme", "--limit", "3", "--json", db=acme).json()
    page2 = cli("message", "list", "sales", "--workspace", "acme", "--limit", "3", "--before",
                str(page1[-1]["id"]), "--json", db=acme).json()
    page3 = cli("message", "list", "sales", "--workspace", "acme", "--limit", "3", "--before",
                str(page2[-1]["id"]), "--json", db=acme).json()
    bodies = [m["body"] for m in page1 + page2 + page3]
    assert bodies == [f"m{i}" for i in range(6, -1, -1)]
    assert cli("message", "list", "--status", "nonsense", db=acme).code == 2
    assert cli("message", "list", "--direction", "in", "--json", db=acme).json() == []


# --- through daemons ---------------------------------------------------------------------------


def _fleet(tmp_path, url, *, rate=0.0, send_delay=0.0, acks=(2, 3), burst=3, jitter=0.0, after_send_delay=0.0):
    fleet = Fleet(tmp_path / "fleet", url)
    config = fleet.config_for("host-a")
    doc = yaml.safe_load(config.read_text())
    doc["providers"]["webjs"]["options"].update(
        {"outbox": str(fleet.root / "outbox.jsonl"), "send_delay": send_delay, "acks": list(acks),
         "after_send_delay": after_send_delay,
         "not_on_whatsapp": ["6281299999999"]})
    doc["messages"] = {"rate_per_minute": rate, "burst": burst, "jitter": jitter, "poll_interval": 0.1,
                       "resolve_timeout": 3}
    config.write_text(yaml.safe_dump(doc))
    return fleet


def _outbox(fleet):
    path = fleet.root / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.mariadb
def test_send_through_a_daemon_reaches_read(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    with _fleet(tmp_path, mariadb_url) as fleet:
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=mariadb_url).code == 0
        fleet.start(1)
        assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=mariadb_url).code == 0
        r = cli("message", "send", "sales", "--workspace", "acme", "--to", PHONE, "--text", "hi", "--wait",
                "--until", "read", "--timeout", "30", "--json", db=mariadb_url)
        assert r.code == 0, r
        m = r.json()
        assert m["status"] == "read" and m["ack"] == 3 and m["sent_at"] and m["delivered_at"] and m["read_at"]
        assert [o["id"] for o in _outbox(fleet)] == [m["wa_message_id"]]

        r = cli("message", "send", "sales", "--workspace", "acme", "--to", "+62 812-9999-9999", "--text", "x",
                "--wait", "--timeout", "30", db=mariadb_url)
        assert r.code == 1 and "not_on_whatsapp" in r.stderr, r
        assert len(_outbox(fleet)) == 1  # nothing was sent to the unknown number


@pytest.mark.mariadb
def test_rate_limit_spaces_sends(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    with _fleet(tmp_path, mariadb_url, rate=120, burst=1, acks=()) as fleet:  # one send per 0.5 s
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=mariadb_url).code == 0
        fleet.start(1)
        assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=mariadb_url).code == 0
        for i in range(6):
            assert cli("message", "send", "sales", "--workspace", "acme", "--to", PHONE, "--text", f"r{i}",
                       db=mariadb_url).code == 0
        wait_for(lambda: len(_outbox(fleet)) == 6, timeout=30)
        times = [o["t"] for o in _outbox(fleet)]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) > 0.4, gaps  # 0.5 s per token, less scheduling noise
        assert times[-1] - times[0] > 2.2


@pytest.mark.mariadb
def test_sigkill_during_sending_loses_and_duplicates_nothing(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    rng = random.Random(7)
    # Most of each send happens after the message reached "WhatsApp" and before the daemon
    # returns: a kill there leaves it `sending`, and only the lookup before resending saves it.
    with _fleet(tmp_path, mariadb_url, send_delay=0.02, after_send_delay=0.15, acks=()) as fleet:
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        daemon = fleet.start(1)
        for name in ("a", "b"):  # linked once (messages to an account never linked are refused) ...
            assert cli("account", "add", "--workspace", "acme", "--name", name, db=mariadb_url).code == 0
            assert cli("account", "connect", name, "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code == 0
        fleet.kill(daemon)  # ... then queued for while no daemon runs
        total = 60
        for i in range(total):
            r = cli("message", "send", "a" if i % 2 else "b", "--workspace", "acme", "--to", PHONE,
                    "--text", f"k{i}", db=mariadb_url)
            assert r.code == 0
        kills = 0
        daemon = fleet.start(1)
        sends_before = 0  # "message sent" lines in the daemon's log when this incarnation started
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            sent = _sent_count(mariadb_url) + _sent_count(mariadb_url, "unknown")
            if sent == total:
                break
            # Kill only once this incarnation is sending (not while it still claims and starts
            # sessions), at a random point of its send loop.
            if daemon.alive() and _log_count(daemon, "message sent") > sends_before and kills < 12:
                time.sleep(rng.uniform(0.05, 0.6))
                fleet.kill(daemon)
                kills += 1
                sends_before = _log_count(daemon, "message sent")
                daemon = fleet.start(1)  # same name: it releases its dead incarnation's leases at birth
            else:
                time.sleep(0.1)
        # Every message is sent, or (handed to a page that died before anything could be known of it)
        # `unknown` for the operator; none reached WhatsApp twice, and every sent one did reach it.
        unknown = _sent_count(mariadb_url, "unknown")
        assert _sent_count(mariadb_url) + unknown == total, fleet.logs()
        assert kills >= 5
        ids = [o["id"] for o in _outbox(fleet)]
        assert len(ids) == len(set(ids)), "a message reached WhatsApp twice"
        assert _wa_ids(mariadb_url, "sent") <= set(ids) <= _wa_ids(mariadb_url)
        assert len(ids) >= total - unknown
        logs = "".join(d.log.read_text() for d in fleet.daemons.values())
        assert "not sending again" in logs or "found in WhatsApp: sent" in logs, (
            "no kill hit the window after a send; the test proved nothing")


def _log_count(daemon, text: str) -> int:
    return daemon.log.read_text().count(text) if daemon.log.exists() else 0


def _sent_count(url, status: str = "sent") -> int:
    from blazzctl.db import Database
    from blazzctl.models import Message

    db = Database(url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Message).where(Message.status == status))
    finally:
        db.dispose()


def _wa_ids(url, status: str | None = None) -> set[str]:
    from blazzctl.db import Database
    from blazzctl.models import Message

    db = Database(url)
    try:
        with db.session() as s:
            query = select(Message.wa_message_id)
            if status:
                query = query.where(Message.status == status)
            return set(s.scalars(query))
    finally:
        db.dispose()


# --- media: the file's bytes are stored with the message (both dialects): chunks of 512 KiB that
# reassemble to the file, written in the message's transaction or not at all.

def chunks(database) -> list[tuple[int, int, bytes]]:
    from blazzctl.models import MessageMediaChunk

    with database.session() as s:
        return [tuple(r) for r in s.execute(select(MessageMediaChunk.message_id, MessageMediaChunk.seq,
                                                   MessageMediaChunk.data).order_by(MessageMediaChunk.id))]


def message_count(database) -> int:
    from blazzctl.models import Message

    with database.session() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_the_file_bytes_are_stored_in_chunks_with_the_message(cli, acme, database, tmp_path):
    data = os.urandom(2 * CHUNK_BYTES + 12345)
    file = tmp_path / "report.pdf"
    file.write_bytes(data)
    r = send(cli, acme, "--to", PHONE, "--media", str(file), "--caption", "Q3", "--json")
    assert r.code == 0, r
    message_id = r.json()["id"]
    stored = chunks(database)
    assert [(m, seq, len(d)) for m, seq, d in stored] == [
        (message_id, 0, CHUNK_BYTES), (message_id, 1, CHUNK_BYTES), (message_id, 2, 12345)]
    assert b"".join(d for _m, _seq, d in stored) == data

    from blazzctl.models import Message
    from blazzctl.services import message_media

    with database.session() as s:
        assert message_media.load(s, message_id) == data
        m = s.get(Message, message_id)
        assert (m.media_path, m.media_size, m.media_filename, m.media_mimetype, m.type) == (
            str(file), len(data), "report.pdf", "application/pdf", "document")


def test_the_same_idempotency_key_stores_the_bytes_once(cli, acme, database, tmp_path):
    file = tmp_path / "a.pdf"
    file.write_bytes(os.urandom(CHUNK_BYTES + 1))
    for _ in range(2):
        assert send(cli, acme, "--to", PHONE, "--media", str(file), "--idempotency-key", "k1").code == 0
    assert message_count(database) == 1 and len(chunks(database)) == 2


def test_a_refused_send_writes_no_chunk(cli, acme, database, tmp_path, monkeypatch):
    """Refused before reading (over the limit) or after some chunks were written (the file grew
    after its check): either way neither the message nor any chunk remains."""
    from blazzctl.services import messages

    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(2 * CHUNK_BYTES))
    r = send(cli, acme, "--to", PHONE, "--media", str(big), env={"BLAZZ_MESSAGES_MEDIA_MAX_MB": "{image: 0.5}"})
    assert r.code == 2 and "limit for image is 0.5 MB" in r.stderr, r

    checked = messages.check_media

    def check_then_grow(path, limits):
        found = checked(path, limits)
        with open(big, "ab") as fh:  # a writer still appending after the check
            fh.write(os.urandom(CHUNK_BYTES))
        return found

    monkeypatch.setattr(messages, "check_media", check_then_grow)
    r = send(cli, acme, "--to", PHONE, "--media", str(big))
    assert r.code == 2 and "changed while it was read" in r.stderr, r
    assert message_count(database) == 0 and chunks(database) == []
