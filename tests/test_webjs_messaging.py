"""Messages through the real WhatsApp Web driver: a daemon, Chromium and the fake WhatsApp Web.

Sends (text, media, reply) reach the fake's servers; its acks move the status to read; media
is sent from the bytes stored in the database, so the file may be gone by then (a message
queued before that sends from its path); a number that is not on WhatsApp fails with the
reason; an incoming message delivered twice is stored once, with its chat and contact; a
group message keeps its sender.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import urllib.request

import pytest
from sqlalchemy import delete, func, select

from tests.webjs_helpers import WebjsFleet, wait_qr, wait_status, wait_until

PHONE = "+6281234500001"

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")


@pytest.fixture
def fake(fake_wa_web):
    """A fake WhatsApp Web per test (conftest's ``fake`` is per module): every test here links PHONE,
    and a shared fake keeps what earlier tests sent that account, which a catch-up after a
    reconnect (a lease renewal late under load, say) rightly stores, into this test's counts."""
    return fake_wa_web


@pytest.fixture
def linked(cli, fake, tmp_path, sqlite_url):
    """A connected account on one webjs daemon: (url, account id, db, fleet)."""
    from blazzctl.db import Database
    from tests.daemon_helpers import migrate

    migrate(sqlite_url)
    db = Database(sqlite_url)
    with WebjsFleet(tmp_path / "fleet", sqlite_url, fake.url) as fleet:
        config = fleet.config_for("host-a")
        text = config.read_text()
        config.write_text(text + "messages:\n  rate_per_minute: 0\n  jitter: 0\n  poll_interval: 0.1\n"
                          f"  download_media: true\n  max_download_mb: 0.02\n  media_dir: {tmp_path / 'media'}\n")
        assert cli("workspace", "create", "acme", db=sqlite_url).code == 0
        account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=sqlite_url).json()
        fleet.start(1)
        assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=sqlite_url).code == 0
        fake.link(wait_qr(db, account["id"], 60, fleet), PHONE)
        wait_status(db, account["id"], "connected", 60, fleet)
        yield sqlite_url, account["id"], db, fleet
    db.dispose()


def send(cli, url, *args):
    return cli("message", "send", "sales", "--workspace", "acme", *args, db=url)


def test_text_media_and_reply_reach_whatsapp_and_acks_reach_read(cli, fake, linked, tmp_path):
    url, account_id, db, fleet = linked
    r = send(cli, url, "--to", "+62 812-3456-0002", "--text", "hello from blazz", "--wait", "--timeout", "60",
             "--json")
    assert r.code == 0, (r, fleet.logs())
    text_msg = r.json()
    sent = fake.sent(PHONE)
    assert [(s["to"], s["body"]) for s in sent] == [("6281234560002@c.us", "hello from blazz")]
    assert sent[0]["id"] == text_msg["wa_message_id"]

    image = tmp_path / "pixel.png"
    image.write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="))
    r = send(cli, url, "--to", "6281234560002@c.us", "--media", str(image), "--caption", "a pixel",
             "--reply-to", text_msg["wa_message_id"], "--wait", "--timeout", "60", "--json")
    assert r.code == 0, (r, fleet.logs())
    media = fake.sent(PHONE)[-1]
    assert media["media"]["mimetype"] == "image/png" and media.get("caption") == "a pixel"
    assert media.get("quoted_id") == text_msg["wa_message_id"].rsplit("_", 1)[-1]

    fake.ack(PHONE, text_msg["wa_message_id"], 3)
    row = wait_until(lambda: _message(db, text_msg["id"]) if _message(db, text_msg["id"])["status"] == "read"
                     else None, 30, "the read ack")
    assert row["ack"] == 3 and row["read_at"] is not None and row["delivered_at"] is not None


def test_media_is_sent_from_the_database_when_the_file_is_gone(cli, fake, linked, tmp_path):
    """The file is deleted after `message send` returned and before the daemon sends (it is
    disconnected meanwhile), as it would be missing on another host: WhatsApp gets its bytes."""
    url, account_id, db, fleet = linked
    data = os.urandom(2 * 512 * 1024 + 777)  # three chunks
    file = tmp_path / "report.pdf"
    file.write_bytes(data)
    with _disconnected(cli, url, db, account_id, fleet):
        r = send(cli, url, "--to", "+62 812-3456-0006", "--media", str(file), "--caption", "Q3", "--json")
        assert r.code == 0, r
        file.unlink()
    row = wait_until(lambda: _settled(db, [r.json()["id"]]), 60, "the media send")[0]
    assert row["status"] == "sent", (row, fleet.logs())
    media = fake.sent(PHONE)[-1]["media"]
    assert (media["filename"], media["size"], media["mimetype"]) == ("report.pdf", len(data), "application/pdf")
    assert media["filehash"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    with urllib.request.urlopen(fake.url + media["clientUrl"].lstrip("/"), timeout=10) as response:
        assert response.read() == data
    # The sender discards the bytes in the transaction that records the send; WhatsApp's ack can
    # mark the message sent a moment before that commits (seen once under CI's load).
    wait_until(lambda: _stored_chunks(db, r.json()["id"]) == 0, 30, "the bytes of the sent message discarded")


def test_media_queued_before_the_bytes_moved_into_the_database_is_sent_from_its_path(cli, fake, linked, tmp_path):
    """A message with a path and no stored bytes (written before migration 0002) reads the
    file; when that file is gone the message fails at once, as before."""
    from blazzctl.models import MessageMediaChunk

    url, account_id, db, fleet = linked
    kept, gone = tmp_path / "kept.pdf", tmp_path / "gone.pdf"
    kept.write_bytes(b"%PDF-1.4 kept")
    gone.write_bytes(b"%PDF-1.4 gone")
    with _disconnected(cli, url, db, account_id, fleet):
        ids = [send(cli, url, "--to", "+62 812-3456-0007", "--media", str(f), "--json").json()["id"]
               for f in (kept, gone)]
        with db.session() as s:
            s.execute(delete(MessageMediaChunk))
        gone.unlink()
    done = wait_until(lambda: _settled(db, ids), 60, "both sends settled")
    assert done[0]["status"] == "sent", (done, fleet.logs())
    media = fake.sent(PHONE)[-1]["media"]
    assert media["filehash"] == base64.b64encode(hashlib.sha256(b"%PDF-1.4 kept").digest()).decode()
    assert (done[1]["status"], done[1]["attempts"]) == ("failed", 1)
    assert done[1]["error"].startswith("send_failed: FileNotFoundError"), done


def test_the_bytes_of_a_failed_media_message_are_not_kept(cli, fake, linked, tmp_path):
    url, account_id, db, fleet = linked
    fake.not_on_whatsapp("+6281234560010")
    file = tmp_path / "photo.png"
    file.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(1000))
    with _disconnected(cli, url, db, account_id, fleet):
        r = send(cli, url, "--to", "+6281234560010", "--media", str(file), "--json")
        assert r.code == 0, r
        assert _stored_chunks(db, r.json()["id"]) == 1
    row = wait_until(lambda: _settled(db, [r.json()["id"]]), 60, "the failed send")[0]
    assert (row["status"], row["error"]) == ("failed", "not_on_whatsapp"), (row, fleet.logs())
    assert _stored_chunks(db, r.json()["id"]) == 0


def _stored_chunks(db, message_id: int) -> int:
    from blazzctl.models import MessageMediaChunk

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(MessageMediaChunk)
                        .where(MessageMediaChunk.message_id == message_id))


@contextlib.contextmanager
def _disconnected(cli, url, db, account_id, fleet):
    """The account disconnected while the block runs (nothing is sent), then connected again."""
    assert cli("account", "disconnect", "sales", "--workspace", "acme", "--timeout", "30", db=url).code == 0
    yield
    assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=url).code == 0
    wait_status(db, account_id, "connected", 60, fleet)


def test_number_not_on_whatsapp_fails_with_the_reason(cli, fake, linked):
    url, _account_id, _db, fleet = linked
    fake.not_on_whatsapp("+6281234560009")
    r = send(cli, url, "--to", "+6281234560009", "--text", "anyone?", "--wait", "--timeout", "60")
    assert r.code == 1 and "not_on_whatsapp" in r.stderr, (r, fleet.logs())
    assert all(s["to"] != "6281234560009@c.us" for s in fake.sent(PHONE))


def test_incoming_message_delivered_twice_is_stored_once(cli, fake, linked):
    """(Senders and a group whose ids end in an even digit: the fake addresses them by phone number.)"""
    url, account_id, db, fleet = linked
    fake.deliver(PHONE, "+6281234560008", "first words", id="DUPLICATE01")
    fake.deliver(PHONE, "+6281234560008", "first words", id="DUPLICATE01")  # WhatsApp redelivers
    fake.deliver(PHONE, "+6281234560004", "in the group", group="120363000000000002")
    wait_until(lambda: _count(db, "in") == 2, 30, "two stored messages")
    rows = cli("message", "list", "sales", "--workspace", "acme", "--direction", "in", "--json", db=url).json()
    assert sorted(m["body"] for m in rows) == ["first words", "in the group"]
    chats = {c["jid"]: c for c in cli("chat", "list", "sales", "--workspace", "acme", "--json", db=url).json()}
    private = chats["6281234560008@c.us"]
    assert (private["chat_type"], private["unread_count"], private["last_message"]) == ("private", 1, "first words")
    assert chats["120363000000000002@g.us"]["chat_type"] == "group"
    group_msg = _message_by_body(db, "in the group")
    assert group_msg["sender_jid"] == "6281234560004@c.us"
    contacts = cli("contact", "list", "sales", "--workspace", "acme", "--json", db=url).json()
    assert any(c.get("jid") == "6281234560008@c.us" for c in contacts)


def test_received_media_is_stored_in_the_database_and_read_from_any_host(cli, fake, linked, tmp_path):
    url, account_id, db, fleet = linked
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
    got = fake.deliver(PHONE, "+6281234560006", "look", media={"mimetype": "image/png", "filename": "dot.png",
                                                               "data": base64.b64encode(png).decode()})
    big = fake.deliver(PHONE, "+6281234560006", "too big", media={
        "mimetype": "application/pdf", "filename": "big.pdf", "data": base64.b64encode(os.urandom(30_000)).decode()})
    wait_until(lambda: _count(db, "in") == 2 and _media_of(db, got["_serialized"])["type"] == "image", 30,
               "the media messages stored")
    row = _media_of(db, got["_serialized"])
    assert (row["type"], row["body"], row["media_mimetype"], row["media_path"]) == ("image", "look", "image/png", None)
    assert row["details"]["media_sha256"] == hashlib.sha256(png).hexdigest()
    assert not (tmp_path / "media").exists()  # nothing on the receiving host's disk
    out = tmp_path / "another-host" / "dot.png"
    out.parent.mkdir()
    r = cli("message", "media", "sales", "--workspace", "acme", got["_serialized"], "--out", str(out), db=url)
    assert r.code == 0, r
    assert out.read_bytes() == png

    wait_until(lambda: _media_of(db, big["_serialized"])["type"] == "document", 30, "the big one")
    assert _media_of(db, big["_serialized"])["details"]["media_skipped"] == "too_large"  # > max_download_mb
    r = cli("message", "media", "sales", "--workspace", "acme", big["_serialized"], "--out", str(out), db=url)
    assert r.code == 3 and "too_large" in r.stderr, r


def _media_of(db, wa_message_id: str) -> dict:
    from blazzctl.models import Message

    with db.session() as s:
        m = s.scalars(select(Message).where(Message.wa_message_id == wa_message_id)).one()
        return {"type": m.type, "body": m.body, "media_mimetype": m.media_mimetype, "media_path": m.media_path,
                "details": m.details or {}}


def _message(db, message_id: int) -> dict:
    from blazzctl.models import Message

    with db.session() as s:
        m = s.get(Message, message_id)
        return {"status": str(m.status), "ack": m.ack, "read_at": m.read_at, "delivered_at": m.delivered_at,
                "error": m.error, "attempts": m.attempts}


def _settled(db, message_ids: list[int]) -> list[dict] | None:
    """The messages once none is pending, sending or handed any more."""
    rows = [_message(db, i) for i in message_ids]
    return rows if all(r["status"] not in ("pending", "sending", "handed") for r in rows) else None


def _message_by_body(db, body: str) -> dict:
    from blazzctl.models import Message

    with db.session() as s:
        m = s.scalars(select(Message).where(Message.body == body)).one()
        return {"sender_jid": m.sender_jid, "chat_jid": m.chat_jid}


def _count(db, direction: str) -> int:
    from blazzctl.models import Message

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == direction))


def test_a_new_session_catches_up_a_message_the_database_missed(cli, fake, linked):
    """A message the page heard but the database lost (here: its row deleted, as a daemon killed
    between the page's acknowledgement and the write would leave it) is stored again by the
    catch-up of the next session, from what the page holds (bridge.js recentMessages)."""
    url, account_id, db, fleet = linked
    fake.deliver(PHONE, "+6281234560010", "said while nobody listened", id="CATCHUP01")
    from blazzctl.models import Message

    def stored() -> int:  # (the module's fake phone may hold other tests' messages: the page has those too)
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Message).where(Message.wa_message_id.like("%CATCHUP01")))

    wait_until(lambda: stored() == 1, 30, "the message stored")
    with db.session() as s:
        s.execute(delete(Message).where(Message.direction == "in"))
    assert cli("account", "reconnect", "sales", "--workspace", "acme", db=url).code == 0
    wait_until(lambda: stored() == 1, 60, "the message caught up by the next session")
    assert _message_by_body(db, "said while nobody listened")["chat_jid"] == "6281234560010@c.us"
    assert "caught up messages the database had missed" in "".join(d.log.read_text() for d in fleet.daemons.values())
