"""`blazzctl webhook`: exit codes, JSON keys, secrets shown only by add, update, remove, test and redeliver."""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks import Webhook

from blazzctl.db import Database
from blazzctl.services import schema
from tests.fakes.webhook_receiver import Receiver
from tests.webhook_support import DispatcherThread, fast_settings, wait_until

ENDPOINT_KEYS = ["id", "workspace_id", "url", "events", "active", "created_at", "previous_secret_expires_at"]
DELIVERY_KEYS = ["id", "endpoint_id", "event_id", "type", "status", "attempts", "next_attempt_at",
                 "last_status_code", "last_error", "created_at", "delivered_at"]


@pytest.fixture
def url(sqlite_url):
    db = Database(sqlite_url)
    schema.upgrade(db)
    db.dispose()
    return sqlite_url


@pytest.fixture
def wcli(cli, url):
    """The CLI on a migrated SQLite database with a workspace "acme"."""
    def run(*args, **kw):
        return cli(*args, db=url, **kw)

    assert run("workspace", "create", "acme").code == 0
    return run


def test_add_shows_the_secret_once_and_list_never(wcli):
    added = wcli("webhook", "add", "--workspace", "acme", "http://127.0.0.1:8080/hook", "--json")
    assert added.code == 0, added
    view = added.json()
    assert list(view) == ENDPOINT_KEYS + ["secret"]
    assert view["events"] is None and view["active"] is True
    assert view["secret"].startswith("whsec_") and len(base64.b64decode(view["secret"][6:])) == 32
    listed = wcli("webhook", "list", "--json")
    assert [list(r) for r in listed.json()] == [ENDPOINT_KEYS]
    assert view["secret"] not in listed.stdout
    assert view["secret"] not in wcli("webhook", "list").stdout
    assert view["secret"] not in wcli("webhook", "deliveries", "--json").stdout
    assert view["secret"] in wcli("webhook", "add", "--workspace", "acme", "https://example.com/h",
                                  "--secret", view["secret"]).stdout


def test_events_filter_and_given_secret(wcli):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    view = wcli("webhook", "add", "-w", "acme", "https://example.com/h", "--events",
                "message.received, message.status", "--secret", secret, "--json").json()
    assert view["events"] == ["message.received", "message.status"] and view["secret"] == secret


@pytest.mark.parametrize("bad_url", ["ftp://example.com/h", "example.com/hook", "http://", "https:///path",
                                     "http://exa mple.com/", "javascript:alert(1)", "http://host:99999/"])
def test_invalid_urls_exit_2(wcli, bad_url):
    result = wcli("webhook", "add", "--workspace", "acme", bad_url)
    assert result.code == 2 and "error:" in result.stderr, result
    assert wcli("webhook", "list", "--json").json() == []


@pytest.mark.parametrize("args, code, message", [
    (["--events", "message.deleted"], 2, "unknown event type"),
    (["--events", ""], 2, "--events is empty"),
    (["--events", " , "], 2, "--events is empty"),
    (["--events", "message.received,,message.sent"], 2, "empty entry"),
    (["--secret", "hunter2"], 2, "whsec_"),
    (["--workspace", "nope"], 3, "workspace 'nope' not found"),
])
def test_add_errors(wcli, args, code, message):
    base = ["webhook", "add", "http://127.0.0.1:1/h"]
    if "--workspace" not in args:
        base += ["--workspace", "acme"]
    result = wcli(*base, *args)
    assert result.code == code and message in result.stderr, result
    assert "hunter2" not in result.stderr


def test_loopback_and_private_addresses_are_allowed(wcli):
    for target in ("http://127.0.0.1:9000/h", "http://10.1.2.3/h", "https://[::1]:8443/h", "http://localhost/h"):
        assert wcli("webhook", "add", "-w", "acme", target).code == 0


def test_remove(wcli):
    view = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--json").json()
    removed = wcli("webhook", "remove", str(view["id"]), "--yes", "--json")
    assert removed.code == 0, removed
    assert removed.json() == {k: view[k] for k in ENDPOINT_KEYS}
    assert wcli("webhook", "list", "--json").json() == []
    result = wcli("webhook", "remove", str(view["id"]), "--yes")
    assert result.code == 3 and "not found" in result.stderr


def test_remove_asks_like_account_remove(wcli):
    ep = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--json").json()["id"]
    # no terminal (the test runner's stdin is not one): refused, like `account remove`
    refused = wcli("webhook", "remove", str(ep))
    assert refused.code == 2 and "confirmation needed" in refused.stderr and "--yes" in refused.stderr
    assert [r["id"] for r in wcli("webhook", "list", "--json").json()] == [ep]


def test_remove_prompt_on_a_terminal(wcli, monkeypatch):
    from types import SimpleNamespace

    from blazzctl.cli import webhook as webhook_cli

    ep = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--json").json()["id"]
    # the command only asks whether stdin is a terminal; the answer is read from the runner's input
    monkeypatch.setattr(webhook_cli, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    declined = wcli("webhook", "remove", str(ep), input="n\n")
    assert declined.code == 2 and "not confirmed" in declined.stderr, declined
    assert f"Remove webhook {ep} -> http://127.0.0.1:1/h" in declined.stderr and "[y/N]" in declined.stderr
    assert len(wcli("webhook", "list", "--json").json()) == 1
    accepted = wcli("webhook", "remove", str(ep), "--json", input="y\n")
    assert accepted.code == 0, accepted
    # Click's test runner echoes the typed answer to stdout, as a terminal would; the question is not there
    echoed, _, rest = accepted.stdout.partition("\n")
    assert echoed.strip() == "y" and json.loads(rest)["id"] == int(ep)
    assert wcli("webhook", "list", "--json").json() == []


def test_test_reports_the_answer_and_signs(wcli):
    with Receiver() as receiver:
        view = wcli("webhook", "add", "-w", "acme", receiver.url, "--events", "message.received", "--json").json()
        result = wcli("webhook", "test", str(view["id"]), "--json")
        assert result.code == 0, result
        out = result.json()
        assert out["status"] == "delivered" and out["last_status_code"] == 200 and out["type"] == "webhook.test"
        (request,) = receiver.requests
        event = Webhook(view["secret"]).verify(request.body, request.headers)
        assert event["type"] == "webhook.test" and event["id"] == out["event_id"]
        assert event["sequence"] is None and event["whatsapp_account_id"] is None


def test_test_of_a_failing_receiver_exits_1_and_stays_queued(wcli):
    with Receiver(lambda r: (500, {})) as receiver:
        ep = wcli("webhook", "add", "-w", "acme", receiver.url, "--json").json()["id"]
        result = wcli("webhook", "test", str(ep))
        assert result.code == 1 and "did not accept" in result.stderr
    (row,) = wcli("webhook", "deliveries", "--json").json()
    assert list(row) == DELIVERY_KEYS
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
    assert wcli("webhook", "test", "999").code == 3


def test_deliveries_filters_and_errors(wcli):
    assert wcli("webhook", "deliveries", "--status", "lost").code == 2
    assert wcli("webhook", "deliveries", "--status", "dead", "--json").json() == []
    assert wcli("webhook", "redeliver").code == 2
    assert wcli("webhook", "redeliver", "42").code == 3
    assert wcli("webhook", "redeliver", "42", "--dead").code == 2
    assert wcli("webhook", "redeliver", "--dead", "--endpoint", "42").code == 3


def test_dead_letters_are_redelivered_from_the_cli(wcli, url):
    healthy = {"on": False}
    with Receiver(lambda r: (200, {}) if healthy["on"] else (503, {})) as receiver:
        ep = wcli("webhook", "add", "-w", "acme", receiver.url, "--json").json()["id"]
        wcli("webhook", "test", str(ep))
        db = Database(url)
        try:
            with DispatcherThread(db, fast_settings(retry_schedule=[0.05, 0.05])):
                assert wait_until(lambda: wcli("webhook", "deliveries", "--status", "dead", "--json").json())
                healthy["on"] = True
                redone = wcli("webhook", "redeliver", "--dead", "--endpoint", str(ep), "--json")
                assert redone.code == 0 and redone.json()["redelivered"] == 1
                assert wait_until(lambda: wcli("webhook", "deliveries", "--status", "delivered", "--json").json())
        finally:
            db.dispose()
    (row,) = wcli("webhook", "deliveries", "--json").json()
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 200)
    assert len(receiver.ids()) == 1 and len(receiver.requests) == 4


def test_redelivering_after_410_re_enables_the_endpoint(wcli, url):
    answers = iter([(410, {}), (200, {})])
    with Receiver(lambda r: next(answers)) as receiver:
        ep = wcli("webhook", "add", "-w", "acme", receiver.url, "--json").json()["id"]
        result = wcli("webhook", "test", str(ep))
        assert result.code == 1
        assert wcli("webhook", "list", "--json").json()[0]["active"] is False
        (dead,) = wcli("webhook", "deliveries", "--status", "dead", "--json").json()
        assert dead["last_status_code"] == 410
        assert wcli("webhook", "test", str(ep)).code == 4  # disabled: conflict
        assert wcli("webhook", "redeliver", str(dead["id"])).code == 0
        assert wcli("webhook", "list", "--json").json()[0]["active"] is True
        db = Database(url)
        try:
            with DispatcherThread(db, fast_settings()):
                assert wait_until(lambda: wcli("webhook", "deliveries", "--status", "delivered", "--json").json())
        finally:
            db.dispose()
    assert len(receiver.requests) == 2 and len(receiver.ids()) == 1


def test_the_audit_trail_records_webhook_changes_without_secrets(wcli):
    view = wcli("webhook", "add", "-w", "acme", "https://user:pa55word@example.com/h", "--json").json()
    assert wcli("webhook", "update", str(view["id"]), "--url", "https://user:s3cret@example.com/v2").code == 0
    assert wcli("webhook", "rotate-secret", str(view["id"])).code == 0
    assert wcli("webhook", "remove", str(view["id"]), "--yes").code == 0
    audit = wcli("audit", "list", "--json")
    assert audit.code == 0, audit
    commands = [e["command"] for e in audit.json()]
    assert {"webhook add", "webhook update", "webhook rotate-secret", "webhook remove"} <= set(commands)
    assert "pa55word" not in audit.stdout and "s3cret" not in audit.stdout and view["secret"] not in audit.stdout
    assert "whsec_" not in audit.stdout


def test_test_while_a_daemon_dispatches_sends_each_event_once(wcli, url):
    with Receiver() as receiver:
        ep = wcli("webhook", "add", "-w", "acme", receiver.url, "--json").json()["id"]
        db = Database(url)
        try:
            with DispatcherThread(db, fast_settings(poll_interval=0.01)):
                results = [wcli("webhook", "test", str(ep), "--json") for _ in range(5)]
        finally:
            db.dispose()
    assert [r.code for r in results] == [0] * 5
    assert all(r.json()["last_status_code"] == 200 for r in results)
    assert len(receiver.requests) == 5 and len(receiver.ids()) == 5


@pytest.mark.parametrize("again", ["http://127.0.0.1:8080/hook", "HTTP://127.0.0.1:8080/hook",
                                   "https://Hooks.Example.com/h", "https://hooks.example.com:443/h"])
def test_a_url_already_used_in_the_workspace_is_refused(wcli, again):
    first = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:8080/hook", "--json").json()["id"]
    second = wcli("webhook", "add", "-w", "acme", "https://hooks.example.com/h", "--json").json()["id"]
    result = wcli("webhook", "add", "-w", "acme", again)
    existing = first if "8080" in again else second
    assert result.code == 4 and f"webhook {existing} of this workspace already posts to" in result.stderr, result
    assert f"blazzctl webhook update {existing}" in result.stderr
    assert len(wcli("webhook", "list", "--json").json()) == 2


def test_the_same_url_in_another_workspace_or_another_path_is_fine(wcli):
    assert wcli("workspace", "create", "globex").code == 0
    assert wcli("webhook", "add", "-w", "acme", "https://example.com/h").code == 0
    assert wcli("webhook", "add", "-w", "globex", "https://example.com/h").code == 0
    assert wcli("webhook", "add", "-w", "acme", "https://example.com/h2").code == 0
    assert wcli("webhook", "add", "-w", "acme", "https://example.com/h?tenant=2").code == 0


def test_update_changes_url_events_and_state(wcli):
    view = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--events", "account.qr", "--json").json()
    ep = str(view["id"])
    changed = wcli("webhook", "update", ep, "--url", "https://example.com/v2", "--events",
                   "message.received,message.status", "--json")
    assert changed.code == 0, changed
    out = changed.json()
    assert list(out) == ENDPOINT_KEYS and "whsec_" not in changed.stdout
    assert (out["url"], out["events"], out["active"]) == ("https://example.com/v2",
                                                          ["message.received", "message.status"], True)
    assert wcli("webhook", "update", ep, "--all-events", "--json").json()["events"] is None
    together = wcli("webhook", "update", ep, "--url", "https://example.com/v3", "--events", "account.qr",
                    "--disable", "--json").json()
    assert (together["url"], together["events"], together["active"]) == ("https://example.com/v3",
                                                                         ["account.qr"], False)
    (listed,) = wcli("webhook", "list", "--json").json()
    assert listed == together
    assert wcli("webhook", "update", ep, "--url", "https://example.com/v2", "--all-events").code == 0
    assert wcli("webhook", "test", ep).code == 4  # disabled
    assert wcli("webhook", "update", ep, "--enable", "--json").json()["active"] is True
    (listed,) = wcli("webhook", "list", "--json").json()
    assert (listed["url"], listed["events"], listed["active"]) == ("https://example.com/v2", None, True)
    assert "updated webhook" in wcli("webhook", "update", ep, "--url", "https://example.com/v3").stdout


def test_disabling_gives_up_pending_deliveries_and_enabling_takes_new_events(wcli, url):
    with Receiver(lambda r: (503, {})) as receiver:
        ep = str(wcli("webhook", "add", "-w", "acme", receiver.url, "--json").json()["id"])
        assert wcli("webhook", "test", ep).code == 1  # stays pending, retried later
        assert wcli("webhook", "update", ep, "--disable").code == 0
        (row,) = wcli("webhook", "deliveries", "--json").json()
        assert row["status"] == "dead" and "disabled" in row["last_error"]
        assert wcli("webhook", "update", ep, "--enable").code == 0
        assert wcli("webhook", "test", ep).code == 1  # accepted for delivery again
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "nothing to change"),
    (["--events", ""], 2, "--events is empty"),
    (["--events", "message.deleted"], 2, "unknown event type"),
    (["--events", "account.qr", "--all-events"], 2, "not both"),
    (["--url", "ftp://example.com/h"], 2, "http or https"),
    (["--url", "http://127.0.0.1:2/other"], 4, "already posts to"),
])
def test_update_is_validated_like_add_and_changes_nothing_when_refused(wcli, args, code, message):
    view = wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--events", "account.qr", "--json").json()
    wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:2/other")
    result = wcli("webhook", "update", str(view["id"]), *args)
    assert result.code == code and message in result.stderr, result
    assert "Traceback" not in result.stderr
    assert wcli("webhook", "list", "--json").json()[0] == {k: view[k] for k in ENDPOINT_KEYS}


def test_update_to_its_own_url_and_of_a_missing_webhook(wcli):
    ep = str(wcli("webhook", "add", "-w", "acme", "http://127.0.0.1:1/h", "--json").json()["id"])
    assert wcli("webhook", "update", ep, "--url", "http://127.0.0.1:1/h").code == 0
    missing = wcli("webhook", "update", "99", "--disable")
    assert missing.code == 3 and "not found" in missing.stderr
