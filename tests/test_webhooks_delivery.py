"""The dispatcher against real HTTP receivers on 127.0.0.1 (SQLite and MariaDB)."""

from __future__ import annotations

import random
import threading
import time

from sqlalchemy import select
from standardwebhooks import Webhook

from blazzctl.models import WebhookDelivery, WebhookEndpoint
from blazzctl.services import events
from tests.fakes.webhook_receiver import Receiver
from tests.webhook_support import DispatcherThread, add_endpoint, count, fast_settings, wait_until, \
    workspace_with_account


def emit(db, ws: int, acc: int | None, n: int, type: str = "message.received") -> list[str]:
    ids = []
    for i in range(n):
        with db.session() as session:
            ids.append(events.record(session, type=type, workspace_id=ws, account_id=acc, data={"n": i}))
    return ids


def deliveries(db, **where) -> list[WebhookDelivery]:
    with db.session() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        for key, value in where.items():
            query = query.where(getattr(WebhookDelivery, key) == value)
        return list(session.scalars(query))


def test_deliveries_are_signed_and_verify_independently(database):
    ws, acc = workspace_with_account(database)
    with Receiver() as receiver:
        _, secret = add_endpoint(database, ws, receiver.url)
        ids = emit(database, ws, acc, 5)
        with DispatcherThread(database, fast_settings()):
            assert wait_until(lambda: count(database, status="delivered") == 5)
    assert receiver.ids() == set(ids)
    verifier = Webhook(secret)
    for request in receiver.requests:
        event = verifier.verify(request.body, request.headers)  # raises unless the signature is valid
        assert event["id"] == request.headers["webhook-id"]
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert [r.event["sequence"] for r in sorted(receiver.requests, key=lambda r: r.event["sequence"])] == [1, 2, 3, 4, 5]
    row = deliveries(database)[0]
    assert (row.attempts, row.last_status_code, row.last_response) == (1, 200, '{"ok":true}')
    assert row.delivered_at is not None and row.last_duration_ms is not None and row.locked_by is None


def test_a_receiver_failing_30_percent_at_random_gets_every_event(database):
    ws, acc = workspace_with_account(database)
    rng, lock = random.Random(1234), threading.Lock()

    def flaky(_request):
        with lock:
            failing = rng.random() < 0.3
        return (rng.choice([500, 502, 503, 429, 408]), {}) if failing else (200, {})

    with Receiver(flaky) as receiver:
        _, secret = add_endpoint(database, ws, receiver.url)
        ids = emit(database, ws, acc, 60)
        with DispatcherThread(database, fast_settings(retry_schedule=[0.05] * 12)):
            assert wait_until(lambda: count(database, status="delivered") == 60, timeout=60)
    assert receiver.ids() == set(ids)
    assert len(receiver.requests) > 60  # some were retried ...
    by_id: dict[str, set[bytes]] = {}
    for request in receiver.requests:  # ... always under the same id, with the same body
        Webhook(secret).verify(request.body, request.headers)
        by_id.setdefault(request.headers["webhook-id"], set()).add(request.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    assert max(d.attempts for d in deliveries(database)) > 1


def test_a_hanging_receiver_never_holds_back_the_others(database):
    ws, acc = workspace_with_account(database)
    with Receiver(lambda r: (Receiver.HANG, {})) as hanging, Receiver() as healthy:
        hang_id, _ = add_endpoint(database, ws, hanging.url, events=["message.received"])
        ok_id, _ = add_endpoint(database, ws, healthy.url, events=["message.status"])
        emit(database, ws, acc, 10, type="message.received")
        emit(database, ws, acc, 20, type="message.status")
        settings = fast_settings(timeout=1.5, concurrency_per_endpoint=3, retry_schedule=[30])
        with DispatcherThread(database, settings):
            assert wait_until(lambda: count(database, endpoint_id=ok_id, status="delivered") == 20, timeout=20)
            assert wait_until(lambda: any(d.last_error for d in deliveries(database, endpoint_id=hang_id)),
                              timeout=20)
        first = hanging.requests[0].at  # bounded concurrency: 3 at once until the 1.5 s timeout frees them
        assert len([r for r in hanging.requests if r.at < first + 1.2]) == 3
    stuck = deliveries(database, endpoint_id=hang_id)
    assert all(d.status == "pending" for d in stuck)
    assert any(d.last_error and d.last_error.startswith("timeout") for d in stuck)


def test_410_gone_disables_the_endpoint(database):
    ws, acc = workspace_with_account(database)
    with Receiver(lambda r: (410, {})) as receiver:
        ep, _ = add_endpoint(database, ws, receiver.url)
        emit(database, ws, acc, 1)
        with DispatcherThread(database, fast_settings()):
            assert wait_until(lambda: count(database, status="dead") == 1)
    with database.session() as session:
        endpoint = session.get(WebhookEndpoint, ep)
        assert not endpoint.active and "410" in endpoint.disabled_reason
    assert len(receiver.requests) == 1
    assert emit(database, ws, acc, 1) == [None]  # no more events for a disabled endpoint


def test_other_4xx_are_dead_at_once_and_429_waits_for_retry_after(database):
    ws, acc = workspace_with_account(database)
    answers = iter([(429, {"retry-after": "1"}), (200, {})])
    with Receiver(lambda r: (404, {})) as gone, Receiver(lambda r: next(answers)) as throttled:
        add_endpoint(database, ws, gone.url, events=["message.sent"])
        add_endpoint(database, ws, throttled.url, events=["message.status"])
        emit(database, ws, acc, 1, type="message.sent")
        emit(database, ws, acc, 1, type="message.status")
        with DispatcherThread(database, fast_settings(retry_schedule=[0.05, 0.05])):
            assert wait_until(lambda: count(database, status="dead") == 1 and count(database, status="delivered") == 1)
    assert len(gone.requests) == 1
    first, second = throttled.requests
    assert second.at - first.at >= 0.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_after_the_schedule_the_delivery_is_dead(database):
    ws, acc = workspace_with_account(database)
    with Receiver(lambda r: (503, {})) as receiver:
        add_endpoint(database, ws, receiver.url)
        emit(database, ws, acc, 1)
        with DispatcherThread(database, fast_settings(retry_schedule=[0.05, 0.05, 0.05])):
            assert wait_until(lambda: count(database, status="dead") == 1)
    (row,) = deliveries(database)
    assert (row.attempts, row.last_status_code, row.last_error) == (4, 503, "HTTP 503")
    assert len(receiver.requests) == 4


def test_an_event_whose_transaction_rolled_back_is_never_delivered(database):
    ws, acc = workspace_with_account(database)
    with Receiver() as receiver:
        add_endpoint(database, ws, receiver.url)
        with DispatcherThread(database, fast_settings()):
            rolled_back = None
            try:
                with database.session() as session:
                    rolled_back = events.record(session, type="message.received", workspace_id=ws,
                                                account_id=acc, data={})
                    session.flush()
                    time.sleep(0.3)  # the dispatcher polls meanwhile
                    raise RuntimeError("rollback")
            except RuntimeError:
                pass
            (committed,) = emit(database, ws, acc, 1)
            assert wait_until(lambda: count(database, status="delivered") == 1)
            time.sleep(0.3)
    assert rolled_back and receiver.ids() == {committed}
    assert count(database) == 1


def test_a_stopping_dispatcher_gives_back_what_it_could_not_finish(database):
    ws, acc = workspace_with_account(database)
    with Receiver(lambda r: (Receiver.HANG, {})) as hanging:
        add_endpoint(database, ws, hanging.url)
        emit(database, ws, acc, 3)
        thread = DispatcherThread(database, fast_settings(timeout=60)).__enter__()
        try:
            assert hanging.wait_for(lambda r: len(r.requests) == 3, timeout=20)
        finally:
            started = time.monotonic()
            thread.__exit__(None, None, None)
        assert time.monotonic() - started < 20  # drains for a few seconds, not for the 60 s timeout
    rows = deliveries(database)
    assert [(d.status, d.attempts, d.locked_by) for d in rows] == [("pending", 0, None)] * 3
