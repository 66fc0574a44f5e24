"""`webhook rotate-secret`: during the grace every delivery verifies with the old and the new
secret, after it only with the new one; checked with the standardwebhooks package."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook, WebhookVerificationError

from blazzctl.db import Database, db_now
from blazzctl.models import WebhookEndpoint
from blazzctl.services import webhooks
from tests.fakes.webhook_receiver import Receiver
from tests.webhook_support import DispatcherThread, fast_settings, wait_until


@pytest.fixture
def wcli(cli, migrated_url):
    """The CLI on a migrated database (SQLite, then MariaDB) with a workspace "acme"."""
    def run(*args, **kw):
        return cli(*args, db=migrated_url, **kw)

    assert run("workspace", "create", "acme").code == 0
    return run


def add(wcli, url: str) -> tuple[str, str]:
    view = wcli("webhook", "add", "-w", "acme", url, "--json").json()
    return str(view["id"]), view["secret"]


def rotate(wcli, ep: str, *args: str, env: dict | None = None) -> dict:
    result = wcli("webhook", "rotate-secret", ep, *args, "--json", env=env)
    assert result.code == 0, result
    return result.json()


def test_delivery(wcli, ep: str, receiver: Receiver):
    """Send a webhook.test event now and return the request the receiver got."""
    before = len(receiver.requests)
    result = wcli("webhook", "test", ep)
    assert result.code == 0, result
    assert len(receiver.requests) == before + 1
    return receiver.requests[-1]


test_delivery.__test__ = False  # a helper, not a test


def verifies(secret: str, request) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
        return True
    except WebhookVerificationError:
        return False


def end_grace(url: str, ep: str) -> None:
    """Time travel: the stored expiry of the old secret moves a second into the past."""
    db = Database(url)
    try:
        with db.session() as session:
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == int(ep))
                            .values(previous_secret_expires_at=db_now(-1)))
    finally:
        db.dispose()


def test_both_secrets_verify_during_the_grace_and_only_the_new_one_after(wcli, migrated_url):
    with Receiver() as receiver:
        ep, old = add(wcli, receiver.url)
        view = rotate(wcli, ep)
        new = view["secret"]
        assert new.startswith("whsec_") and new != old
        assert view["previous_secret_expires_at"] is not None
        during = test_delivery(wcli, ep, receiver)
        assert [s[:3] for s in during.headers["webhook-signature"].split(" ")] == ["v1,", "v1,"]
        assert verifies(new, during) and verifies(old, during)

        end_grace(migrated_url, ep)
        after = test_delivery(wcli, ep, receiver)
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert verifies(new, after) and not verifies(old, after)
    (listed,) = wcli("webhook", "list", "--json").json()
    assert listed["previous_secret_expires_at"] is None
    assert new not in wcli("webhook", "list").stdout


def test_the_daemons_dispatcher_signs_with_both_during_the_grace(wcli, migrated_url):
    with Receiver() as receiver:
        ep, old = add(wcli, receiver.url)
        new = rotate(wcli, ep)["secret"]
        db = Database(migrated_url)
        try:
            with db.session() as session:
                webhooks.queue_test(session, endpoint=webhooks.get(session, ep))
            with DispatcherThread(db, fast_settings()):
                assert receiver.wait_for(lambda r: len(r.requests) == 1)
        finally:
            db.dispose()
    (request,) = receiver.requests
    assert verifies(new, request) and verifies(old, request)


def test_the_grace_comes_from_webhooks_rotation_grace(wcli):
    ep, _ = add(wcli, "http://127.0.0.1:1/h")
    view = rotate(wcli, ep, env={"BLAZZ_WEBHOOKS_ROTATION_GRACE": "3600"})
    expires = datetime.fromisoformat(view["previous_secret_expires_at"].replace("Z", "+00:00"))
    expected = datetime.now(timezone.utc) + timedelta(seconds=3600)
    assert abs(expires - expected) < timedelta(minutes=5)  # a wide margin: the default would be 24 h off
    human = wcli("webhook", "rotate-secret", ep, "--grace", "7200")
    assert human.code == 0 and "shown only now" in human.stdout and "the old secret also signs until" in human.stdout


def test_grace_zero_revokes_the_old_secret_at_once(wcli):
    with Receiver() as receiver:
        ep, old = add(wcli, receiver.url)
        view = rotate(wcli, ep, "--grace", "0")
        assert view["previous_secret_expires_at"] is None
        request = test_delivery(wcli, ep, receiver)
    assert verifies(view["secret"], request) and not verifies(old, request)


def test_a_second_rotation_within_the_grace_drops_the_oldest_secret(wcli):
    with Receiver() as receiver:
        ep, first = add(wcli, receiver.url)
        second = rotate(wcli, ep)["secret"]
        third = rotate(wcli, ep)["secret"]
        request = test_delivery(wcli, ep, receiver)
    assert verifies(third, request) and verifies(second, request) and not verifies(first, request)


def test_a_given_secret_is_checked(wcli):
    with Receiver() as receiver:
        ep, old = add(wcli, receiver.url)
        bad = wcli("webhook", "rotate-secret", ep, "--secret", "hunter2")
        assert bad.code == 2 and "whsec_" in bad.stderr and "hunter2" not in bad.stderr
        same = wcli("webhook", "rotate-secret", ep, "--secret", old)
        assert same.code == 2 and "the current one" in same.stderr
        assert wcli("webhook", "list", "--json").json()[0]["previous_secret_expires_at"] is None
        request = test_delivery(wcli, ep, receiver)  # still signed by the one secret only
        assert request.headers["webhook-signature"].count("v1,") == 1 and verifies(old, request)
        chosen = "whsec_" + base64.b64encode(b"k" * 32).decode()
        assert rotate(wcli, ep, "--secret", chosen)["secret"] == chosen


@pytest.mark.parametrize("args, code, message", [
    (["99"], 3, "webhook '99' not found"),
    (["{ep}", "--grace", "-1"], 2, "--grace"),
])
def test_rotate_errors(wcli, args, code, message):
    ep, _ = add(wcli, "http://127.0.0.1:1/h")
    result = wcli("webhook", "rotate-secret", *[a.format(ep=ep) for a in args])
    assert result.code == code and message in result.stderr, result
    assert "Traceback" not in result.stderr


def test_the_dispatchers_erase_old_secrets_once_their_grace_is_over(wcli, migrated_url):
    over, _ = add(wcli, "http://127.0.0.1:1/h")
    running, _ = add(wcli, "http://127.0.0.1:2/h")
    rotate(wcli, over)
    rotate(wcli, running)
    end_grace(migrated_url, over)
    db = Database(migrated_url)

    def stored(ep: str) -> tuple:
        with db.session() as session:
            row = session.get(WebhookEndpoint, int(ep))
            return row.previous_secret, row.previous_secret_expires_at

    try:
        thread = DispatcherThread(db, fast_settings(retention_days=0))
        thread.dispatcher.prune_at = 0  # its periodic pruning is due at once
        with thread:
            assert wait_until(lambda: stored(over) == (None, None))
        assert all(stored(running))  # still in its grace: kept
    finally:
        db.dispose()
