"""Signatures checked by an independent implementation (the standardwebhooks package), and the retry policy."""

from __future__ import annotations

import base64
import random
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from blazzctl.errors import InvalidInput
from blazzctl.webhooks import signing
from blazzctl.webhooks.retry import Verdict, decide, parse_retry_after


def test_generated_secret_is_whsec_base64_of_32_bytes():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 32
    assert signing.generate_secret() != secret


def test_signed_headers_verify_with_the_standardwebhooks_package():
    secret = signing.generate_secret()
    body = '{"id":"evt_1","type":"message.received","data":{"body":"héllo"}}'.encode()
    headers = signing.headers(signing.secret_key(secret), "evt_1", int(time.time()), body)
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"id": "evt_1", "type": "message.received",
                                                      "data": {"body": "héllo"}}


def test_a_changed_body_or_another_secret_does_not_verify():
    secret = signing.generate_secret()
    body = b'{"a":1}'
    headers = signing.headers(signing.secret_key(secret), "evt_2", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a": 1}', headers)  # re-serialised JSON is different bytes
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)


@pytest.mark.parametrize("secret", ["plain-text", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()])
def test_secrets_that_are_not_whsec_base64_are_refused(secret):
    with pytest.raises(InvalidInput):
        signing.secret_key(secret)


SCHEDULE = [5, 30, 120]


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_is_delivered(code):
    assert decide(code, attempts=1, schedule=SCHEDULE).verdict is Verdict.DELIVERED


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 413, 422])
def test_other_4xx_are_not_retried(code):
    assert decide(code, attempts=1, schedule=SCHEDULE).verdict is Verdict.DEAD


def test_410_gone_disables():
    assert decide(410, attempts=1, schedule=SCHEDULE).verdict is Verdict.GONE


@pytest.mark.parametrize("code", [None, 500, 502, 503, 504, 408, 429, 302])
def test_network_errors_5xx_408_429_are_retried_on_the_schedule_with_jitter(code):
    rng = random.Random(7)
    delays = [decide(code, attempts=n, schedule=SCHEDULE, rng=rng).delay for n in (1, 2, 3)]
    for delay, planned in zip(delays, SCHEDULE):
        assert 0.8 * planned <= delay <= 1.2 * planned
    assert decide(code, attempts=1, schedule=[10] * 1, rng=random.Random(1)).delay != \
        decide(code, attempts=1, schedule=[10] * 1, rng=random.Random(2)).delay
    assert decide(code, attempts=4, schedule=SCHEDULE).verdict is Verdict.DEAD


def test_retry_after_is_honoured_but_bounded():
    assert decide(429, attempts=1, schedule=SCHEDULE, retry_after="90").delay == 90
    assert decide(503, attempts=1, schedule=SCHEDULE, retry_after="100000").delay == 3600
    assert 7200 <= decide(503, attempts=1, schedule=[7200], retry_after="100000").delay <= 7200 * 1.2
    assert decide(429, attempts=1, schedule=SCHEDULE, retry_after="garbage").delay <= 6


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now=now) == 42
    assert parse_retry_after(format_datetime(now - timedelta(seconds=42), usegmt=True), now=now) == 0


def test_the_stdlib_verifier_in_the_docs_accepts_ours_and_rejects_tampering():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "webhooks.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b]
    scope: dict = {}
    exec(snippet, scope)
    secret = signing.generate_secret()
    body = b'{"id":"evt_3","type":"webhook.test"}'
    headers = signing.headers(signing.secret_key(secret), "evt_3", int(time.time()), body)
    assert scope["verify"](secret, body, headers)
    assert not scope["verify"](secret, body + b" ", headers)
    old = signing.headers(signing.secret_key(secret), "evt_3", int(time.time()) - 600, body)
    assert not scope["verify"](secret, body, old)


def test_during_a_rotation_both_secrets_verify_and_no_other():
    new, old = signing.generate_secret(), signing.generate_secret()
    body = b'{"id":"evt_4"}'
    headers = signing.headers(signing.secret_key(new), "evt_4", int(time.time()), body,
                              previous=signing.secret_key(old))
    first, second = headers["webhook-signature"].split(" ")
    assert first == signing.signature(signing.secret_key(new), "evt_4", int(headers["webhook-timestamp"]), body)
    assert second.startswith("v1,")
    assert Webhook(new).verify(body, headers) == Webhook(old).verify(body, headers) == {"id": "evt_4"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)
