"""Messages as WhatsApp Web really delivers them (issue 12): a daemon, Chromium and the fake, whose
default behaviours are those of WhatsApp Web (tests/fakes/wa_web/SURFACE.md): incoming messages
arrive as ``ciphertext`` and decrypt later, senders and groups addressed by LID, numbers known
under another (canonical) id, our own sends echoed by the page, edits and deletes.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from sqlalchemy import select

from tests.webjs_helpers import WebjsFleet, wait_qr, wait_status, wait_until

PHONE = "+6281234500011"
DECRYPT_TIMEOUT = 2.0
READY_TIMEOUT = 8.0

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")


@pytest.fixture
def fake(fake_wa_web):
    """A fake WhatsApp Web per test (conftest's ``fake`` is per module): every test here links PHONE,
    and a shared fake keeps what earlier tests sent that account, which a catch-up after a
    reconnect (a lease renewal late under load, say) rightly stores, into this test's counts."""
    return fake_wa_web


@pytest.fixture
def linked(request, cli, fake, tmp_path, sqlite_url):
    """A connected account on one webjs daemon, a webhook endpoint collecting events: (url, account id, db).

    Parametrized indirectly, ``request.param`` adds lines to the ``messages:`` settings."""
    from blazzctl.db import Database
    from tests.daemon_helpers import migrate

    migrate(sqlite_url)
    db = Database(sqlite_url)
    with WebjsFleet(tmp_path / "fleet", sqlite_url, fake.url, webjs={"decrypt_timeout": DECRYPT_TIMEOUT,
                                                                         "ready_timeout": READY_TIMEOUT}) as fleet:
        config = fleet.config_for("host-a")
        config.write_text(config.read_text() + "messages:\n  rate_per_minute: 0\n  jitter: 0\n  poll_interval: 0.1\n"
                          + "".join(f"  {line}\n" for line in getattr(request, "param", [])))
        assert cli("workspace", "create", "acme", db=sqlite_url).code == 0
        assert cli("webhook", "add", "--workspace", "acme", "http://127.0.0.1:9/hook", db=sqlite_url).code == 0
        account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=sqlite_url).json()
        fleet.start(1)
        assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=sqlite_url).code == 0
        fake.link(wait_qr(db, account["id"], 60, fleet), PHONE)
        wait_status(db, account["id"], "connected", 60, fleet)
        yield sqlite_url, account["id"], db, fleet
    db.dispose()


def cli_json(cli, url, *args):
    r = cli(*args, "--workspace", "acme", "--json", db=url)
    assert r.code == 0, r
    return r.json()


def messages(db, **where) -> list[dict]:
    from blazzctl.models import Message

    with db.session() as s:
        q = select(Message).order_by(Message.id)
        for key, value in where.items():
            q = q.where(getattr(Message, key) == value)
        return [{"id": m.id, "type": m.type, "body": m.body, "status": str(m.status), "chat_jid": m.chat_jid,
                 "chat_id": m.chat_id, "direction": str(m.direction), "wa_message_id": m.wa_message_id,
                 "sender_jid": m.sender_jid, "edits": m.edits, "edited_at": m.edited_at, "revoked_at": m.revoked_at}
                for m in s.scalars(q)]


def events_of(db, event_type: str) -> list[dict]:
    from blazzctl.models import WebhookDelivery

    with db.session() as s:
        return [json.loads(p)["data"] for p in s.scalars(select(WebhookDelivery.payload).where(
            WebhookDelivery.event_type == event_type).order_by(WebhookDelivery.id))]


def contacts(db) -> list[dict]:
    from blazzctl.models import Contact

    with db.session() as s:
        return [{"jid": c.jid, "lid": c.lid, "phone_number": c.phone_number, "push_name": c.push_name}
                for c in s.scalars(select(Contact).order_by(Contact.id))]


# --- 1. undecrypted placeholders ----------------------------------------------------------------

def test_a_message_that_arrives_as_ciphertext_is_stored_with_its_text(fake, linked):
    url, account_id, db, fleet = linked
    fake.deliver(PHONE, "+6281234560002", "the customer's words")  # ciphertext, decrypted 0.3 s later
    row = wait_until(lambda: (messages(db, direction="in") or [None])[0], 30, "the stored message")
    wait_until(lambda: messages(db, direction="in")[0]["status"] != "undecrypted" or None, 10, "decrypted")
    [row] = messages(db, direction="in")
    assert (row["type"], row["body"], row["status"]) == ("text", "the customer's words", "received"), fleet.logs(30)
    [received] = events_of(db, "message.received")
    assert (received["body"], received["type"]) == ("the customer's words", "text")


def test_a_message_undecrypted_past_the_timeout_is_completed_in_place(fake, linked):
    url, account_id, db, fleet = linked
    held = fake.deliver(PHONE, "+6281234560004", "decrypted at last", hold=True)
    row = wait_until(lambda: (messages(db, direction="in") or [None])[0], DECRYPT_TIMEOUT + 30, "the placeholder")
    assert (row["type"], row["body"], row["status"]) == ("ciphertext", None, "undecrypted")
    fake.decrypt(PHONE, held["id"]["id"])
    wait_until(lambda: messages(db, direction="in")[0]["status"] == "received" or None, 30, "completed")
    [done] = messages(db, direction="in")
    assert (done["id"], done["type"], done["body"]) == (row["id"], "text", "decrypted at last")
    [updated] = events_of(db, "message.updated")
    assert (updated["message_id"], updated["body"], updated["status"]) == (row["id"], "decrypted at last", "received")
    chat = cli_json_chat(db, done["chat_jid"])
    assert chat["last_message"] == "decrypted at last"


def cli_json_chat(db, jid: str) -> dict:
    from blazzctl.models import Chat

    with db.session() as s:
        c = s.scalars(select(Chat).where(Chat.jid == jid)).one()
        return {"jid": c.jid, "last_message": c.last_message, "last_message_at": c.last_message_at,
                "unread_count": c.unread_count}


# --- 2. LID everywhere ------------------------------------------------------------------------

def test_a_lid_sender_is_one_contact_and_a_reply_into_its_lid_chat_is_sent(cli, fake, linked):
    url, account_id, db, fleet = linked
    incoming = fake.deliver(PHONE, "+6281234560005", "hello from a LID", notifyName="Rina")  # odd: LID-only
    lid = incoming["id"]["remote"]
    assert lid.endswith("@lid")
    wait_until(lambda: messages(db, direction="in", status="received") or None, 30, "the LID message")
    assert contacts(db) == [{"jid": lid, "lid": lid, "phone_number": None, "push_name": "Rina"}]

    r = cli("message", "send", "sales", "--workspace", "acme", "--to", lid, "--text", "hi Rina", "--wait",
            "--timeout", "60", "--json", db=url)
    assert r.code == 0, (r, fleet.logs(40))
    assert (r.json()["chat_jid"], r.json()["status"]) == (lid, "sent")
    assert fake.sent(PHONE)[-1]["to"] == lid

    fake.reveal_phone(PHONE, "+6281234560005")  # WhatsApp tells the page her number later
    fake.deliver(PHONE, "+6281234560005", "second message", notifyName="Rina")
    wait_until(lambda: len(messages(db, direction="in", status="received")) == 2 or None, 30, "the second message")
    assert contacts(db) == [{"jid": lid, "lid": lid, "phone_number": "+6281234560005", "push_name": "Rina"}]
    listed = cli_json(cli, url, "contact", "list", "sales")
    assert [(c["jid"], c["lid"], c["phone_number"]) for c in listed] == [(lid, lid, "+6281234560005")]


def test_a_reply_into_a_group_in_lid_addressing_mode_is_sent(cli, fake, linked):
    url, account_id, db, fleet = linked
    g = fake.deliver(PHONE, "+6281234560006", "group news", group="120363000000000123")  # odd group: LID mode
    wait_until(lambda: messages(db, direction="in", status="received") or None, 30, "the group message")
    [row] = messages(db, direction="in")
    assert row["sender_jid"] == g["author"] and g["author"].endswith("@lid")
    [contact] = contacts(db)
    assert (contact["lid"], contact["phone_number"]) == (g["author"], "+6281234560006")
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "120363000000000123@g.us", "--text",
            "noted", "--wait", "--timeout", "60", db=url)
    assert r.code == 0, (r, fleet.logs(40))
    assert fake.sent(PHONE)[-1]["to"] == "120363000000000123@g.us"


# --- 3. canonical ids --------------------------------------------------------------------------

def test_a_number_known_under_another_id_is_sent_to_that_id(cli, fake, linked):
    url, account_id, db, fleet = linked
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "+55 11 98765-4321", "--text", "olá",
            "--wait", "--timeout", "60", db=url)
    assert r.code == 0, (r, fleet.logs(40))
    assert "551187654321@c.us" in r.stdout and "5511987654321" in r.stdout  # says it differs from the typed one
    [row] = messages(db, direction="out")
    assert (row["chat_jid"], row["status"]) == ("551187654321@c.us", "sent")
    assert row["wa_message_id"].startswith("true_551187654321@c.us_")
    assert fake.sent(PHONE)[-1]["to"] == "551187654321@c.us"

    fake.not_on_whatsapp("+5511987654000")
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "+5511987654000", "--text", "anyone?",
            "--wait", "--timeout", "60", db=url)
    assert r.code == 1 and "not_on_whatsapp" in r.stderr, r


# --- 4. every message in its chat --------------------------------------------------------------

def test_a_conversation_the_business_starts_is_a_chat_with_both_directions(cli, fake, linked):
    url, account_id, db, fleet = linked
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "+6281234560010", "--text", "special offer",
            "--wait", "--timeout", "60", "--json", db=url)
    assert r.code == 0, (r, fleet.logs(40))
    chats = {c["jid"]: c for c in cli_json(cli, url, "chat", "list", "sales")}
    assert chats["6281234560010@c.us"]["last_message"] == "special offer"
    fake.deliver(PHONE, "+6281234560010", "tell me more")
    wait_until(lambda: messages(db, direction="in", status="received") or None, 30, "the reply")
    listed = cli_json(cli, url, "message", "list", "sales", "--chat", "6281234560010@c.us")
    assert sorted((m["direction"], m["body"]) for m in listed) == [("in", "tell me more"), ("out", "special offer")]
    out = messages(db, direction="out")
    assert len(out) == 1 and out[0]["chat_id"] is not None  # the page's echo completed our row, no second one


def test_our_reply_joins_the_customers_chat_once(cli, fake, linked):
    url, account_id, db, fleet = linked
    fake.deliver(PHONE, "+6281234560012", "question", decrypt_after=0)
    wait_until(lambda: messages(db, direction="in") or None, 30, "the question")
    # the page's echo of our send is matched to our row: one row, in the customer's chat
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "6281234560012@c.us", "--text", "answer",
            "--wait", "--timeout", "60", db=url)
    assert r.code == 0, r
    # Only this customer's chat: the fake's account keeps what earlier tests of this module sent
    # it, which a catch-up after a reconnect may rightly store too.
    chat = "6281234560012@c.us"
    wait_until(lambda: len(messages(db, chat_jid=chat)) == 2 or None, 10,
               lambda: f"two rows in {chat}: {messages(db)}")
    rows = messages(db, chat_jid=chat)
    assert rows[0]["chat_id"] == rows[1]["chat_id"] is not None


# --- 5. edits and deletes ----------------------------------------------------------------------

def test_edits_and_deletes_update_the_row_and_send_webhooks(cli, fake, linked):
    url, account_id, db, fleet = linked
    m = fake.deliver(PHONE, "+6281234560014", "see you at 5")
    wait_until(lambda: messages(db, direction="in", status="received") or None, 30, "the message")
    fake.edit(PHONE, m["_serialized"], "see you at 6")
    row = wait_until(lambda: (r := messages(db, direction="in")[0])["edited_at"] and r, 30, "the edit")
    assert row["body"] == "see you at 6" and [e["body"] for e in row["edits"]] == ["see you at 5"]
    [edited] = events_of(db, "message.edited")
    assert (edited["body"], edited["previous_body"]) == ("see you at 6", "see you at 5")

    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "6281234560014@c.us", "--text", "ok",
            "--wait", "--timeout", "60", "--json", db=url)
    assert r.code == 0, r
    fake.edit(PHONE, r.json()["wa_message_id"], "ok, 6 it is")  # we edited ours (on the phone)
    wait_until(lambda: messages(db, direction="out")[0]["edited_at"] or None, 30, "our edit")
    assert messages(db, direction="out")[0]["body"] == "ok, 6 it is"

    fake.revoke(PHONE, m["_serialized"])
    row = wait_until(lambda: (r := messages(db, direction="in")[0])["revoked_at"] and r, 30, "the delete")
    assert row["body"] is None and [e["body"] for e in row["edits"]] == ["see you at 5", "see you at 6"]
    [revoked] = events_of(db, "message.revoked")
    assert revoked["message_id"] == row["id"]


# --- 2. sync keeps LID contacts and participants by LID ------------------------------------------

def test_sync_keeps_lid_contacts_once_and_participants_by_lid(cli, fake, linked):
    url, account_id, db, fleet = linked
    lid_only = fake.deliver(PHONE, "+6281234560015", "by LID", notifyName="Lia")  # odd: no phone known
    grouped = fake.deliver(PHONE, "+6281234560016", "in a LID group", group="120363000000000125", notifyName="Gus")
    wait_until(lambda: len(messages(db, direction="in", status="received")) == 2 or None, 30, "both messages")
    # after a reload the page lists Gus twice: by phone number (with his LID) and by LID (with his phone)
    before = _active_conns(fake)
    assert fake.reload(PHONE)["pages"] >= 1  # (pages of earlier tests may still count as live)
    # The reloaded page boots a new connection and syncs again; a sync run before that would list
    # the page that is going away.
    wait_until(lambda: (_active_conns(fake) - before) or None, 30, "the reloaded page connected")
    time.sleep(1.0)
    r = cli("sync", "run", "sales", "--workspace", "acme", "--kind", "all", "--wait", "--timeout", "60", db=url)
    assert r.code == 0, (r, fleet.logs(40))
    rows = contacts(db)
    lia = [c for c in rows if c["lid"] == lid_only["from"]]
    gus = [c for c in rows if c["lid"] == grouped["author"]]
    assert [(c["jid"], c["phone_number"]) for c in lia] == [(lid_only["from"], None)]
    assert [(c["jid"], c["phone_number"]) for c in gus] == [(grouped["author"], "+6281234560016")]
    group = cli_json(cli, url, "group", "show", "sales", "120363000000000125@g.us")
    members = {p["jid"]: p["phone_number"] for p in group["participants"]}
    assert members[grouped["author"]] == "+6281234560016"


# --- 8. failures say why ------------------------------------------------------------------------

def test_a_refused_send_and_a_renamed_module_fail_at_once_saying_why(cli, fake, linked):
    url, account_id, db, fleet = linked
    fake.refuse("120363000000000200@g.us")
    r = cli("message", "send", "sales", "--workspace", "acme", "--to", "120363000000000200@g.us", "--text", "hi",
            "--wait", "--timeout", "60", "--json", db=url)
    assert r.code == 1 and r.json()["error"] == "send_refused: ERROR", (r, fleet.logs(30))
    fake.drop_module("WAWebSendMsgChatAction")  # a WhatsApp Web release renamed it
    try:
        r = cli("message", "send", "sales", "--workspace", "acme", "--to", "+6281234560020", "--text", "hi",
                "--wait", "--timeout", "60", "--json", db=url)
    finally:
        fake.drop_module("WAWebSendMsgChatAction", False)
    assert r.code == 1 and r.json()["error"] == "wa_web_incompatible: WAWebSendMsgChatAction", r
    assert _attempts(db, r.json()["id"]) == 1  # not five retries


def _active_conns(fake) -> set[str]:
    """The live page connections of PHONE's linked devices."""
    state = fake.state()
    conns = {d["active_conn"] for d in state["accounts"].get(PHONE.lstrip("+"), {}).get("devices", [])}
    return {pg["conn"] for pg in state["pages"] if pg["conn"] in conns and pg["alive"]}


def _attempts(db, message_id: int) -> int:
    from blazzctl.models import Message

    with db.session() as s:
        return s.get(Message, message_id).attempts


# --- 9. stuck at loading, WhatsApp Web builds without a module the bridge uses ----------------------

def test_a_page_stuck_loading_is_restarted_then_fails_the_third_time(cli, fake, linked):
    from tests.webjs_helpers import Recorder, account_row

    url, account_id, db, fleet = linked
    fake.stall_sync(PHONE)
    try:
        with Recorder(db, account_id) as rec:
            assert cli("account", "reconnect", "sales", "--workspace", "acme", "--no-wait", db=url).code == 0
            row = wait_status(db, account_id, "failed", 3 * READY_TIMEOUT + 60, fleet)
    finally:
        fake.stall_sync(PHONE, False)
    assert (row["status_reason"], row["desired_state"]) == ("stuck_loading", "stopped")
    restarts = [s for s in rec.seen if s[0] == "disconnected" and s[1] == "stuck_loading"]
    assert len(restarts) == 2, rec.seen  # restarted twice, failed the third time
    assert account_row(db, account_id)["last_error"].startswith("WhatsApp Web did not finish loading")


def test_a_build_without_a_module_the_bridge_uses_fails_the_account_naming_it(cli, fake, linked):
    url, account_id, db, fleet = linked
    fake.drop_module("WAWebApiContact")
    try:
        r = cli("account", "reconnect", "sales", "--workspace", "acme", db=url)
        row = wait_status(db, account_id, "failed", 60, fleet)
    finally:
        fake.drop_module("WAWebApiContact", False)
    assert r.code == 1 and "failed (wa_web_incompatible)" in r.stdout, r
    assert row["status_reason"] == "wa_web_incompatible"
    assert "WAWebApiContact" in row["last_error"] and "wa_web_incompatible" in row["last_error"]
    shown = cli_json(cli, url, "account", "show", "sales")
    assert shown["status_reason"] == "wa_web_incompatible"
    health = cli("health", "--json", db=url)
    assert health.code == 2
    assert {c["name"]: c["state"] for c in health.json()["checks"]}["wa_web_compatibility"] == "CRITICAL"


def test_the_account_json_names_the_whatsapp_web_version(cli, fake, linked):
    from tests.fakes.wa_web import WA_VERSION

    url, account_id, db, fleet = linked
    assert cli_json(cli, url, "account", "show", "sales")["wa_version"] == WA_VERSION


# --- 6. read receipts from us --------------------------------------------------------------------

def test_chat_read_sends_a_read_receipt_and_clears_the_unread_count(cli, fake, linked):
    url, account_id, db, fleet = linked
    jid = "6281234560022@c.us"
    fake.deliver(PHONE, "+6281234560022", "one")
    fake.deliver(PHONE, "+6281234560022", "two")
    wait_until(lambda: len(messages(db, direction="in", status="received")) == 2 or None, 30, "two messages")
    assert cli_json_chat(db, jid)["unread_count"] == 2
    assert jid not in fake.seen(PHONE)  # messages.auto_read is off by default
    r = cli("chat", "read", "sales", "--workspace", "acme", "--chat", jid, db=url)
    assert r.code == 0 and "read receipt sent" in r.stdout, (r, fleet.logs(30))
    assert fake.seen(PHONE).count(jid) == 1
    assert cli_json_chat(db, jid)["unread_count"] == 0
    r = cli("chat", "read", "sales", "--workspace", "acme", "--chat", "6281234569999@c.us", db=url)
    assert r.code == 3 and "has no chat" in r.stderr, r


@pytest.mark.parametrize("linked", [["auto_read: true"]], indirect=True)
def test_auto_read_sends_a_read_receipt_for_each_received_message(cli, fake, linked):
    url, account_id, db, fleet = linked
    fake.deliver(PHONE, "+6281234560024", "read me at once")
    wait_until(lambda: "6281234560024@c.us" in fake.seen(PHONE) or None, 30, "the automatic read receipt")
    wait_until(lambda: cli_json_chat(db, "6281234560024@c.us")["unread_count"] == 0 or None, 10, "unread 0")
