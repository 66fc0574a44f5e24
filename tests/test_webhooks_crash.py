"""A delivering daemon killed with SIGKILL midway loses nothing (real processes, real MariaDB)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from standardwebhooks import Webhook

from blazzctl.db import Database
from blazzctl.services import events, schema
from tests.fakes.webhook_receiver import Receiver
from tests.webhook_support import CHILD, add_endpoint, count, wait_until, workspace_with_account

REPO = Path(__file__).resolve().parent.parent



def start_dispatcher(config: Path, name: str) -> subprocess.Popen:
    path = config.parent / f"{name.replace(':', '-')}.log"
    with open(path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, name], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "BLAZZ_CONFIG": str(config)})
    proc.log_path = path
    return proc


def all_delivered(db, n: int, *procs: subprocess.Popen) -> bool:
    for proc in procs:
        assert proc.poll() is None, f"dispatcher exited early:\n{proc.log_path.read_text()[-3000:]}"
    return count(db, status="delivered") == n


@pytest.fixture
def mariadb(mariadb_url, tmp_path):
    db = Database(mariadb_url)
    schema.upgrade(db)
    config = tmp_path / "blazz.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": mariadb_url},
        "webhooks": {"retry_schedule": [0.2] * 10, "timeout": 1, "lock_seconds": 1,  # lease: 2 x 1 + 5 = 7 s
                     "poll_interval": 0.05, "concurrency_per_endpoint": 8, "batch_size": 50}}))
    yield db, config
    db.dispose()


@pytest.mark.mariadb
@pytest.mark.slow
def test_sigkill_midway_every_event_delivered_duplicates_only_under_the_same_id(mariadb):
    db, config = mariadb
    ws, acc = workspace_with_account(db)

    def slow(_request):
        time.sleep(0.02)  # deliveries take a while, so the kill lands with some in flight
        return 200, {}

    with Receiver(slow) as receiver:
        _, secret = add_endpoint(db, ws, receiver.url)
        ids = []
        for chunk in range(6):
            with db.session() as session:
                ids += [events.record(session, type="message.received", workspace_id=ws, account_id=acc,
                                      data={"n": chunk * 50 + i}) for i in range(50)]
        first = start_dispatcher(config, "host:1")
        try:
            assert receiver.wait_for(lambda r: len(r.requests) >= 60, timeout=30)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            at_kill = len(receiver.ids())
            assert at_kill < len(ids), "the first dispatcher finished before the kill"
            second = start_dispatcher(config, "host:2")
            try:
                assert wait_until(lambda: all_delivered(db, len(ids), second), timeout=60)
            finally:
                second.send_signal(signal.SIGTERM)
                assert second.wait(20) == 0  # SIGTERM drains and exits cleanly
        finally:
            if first.poll() is None:
                first.kill()
    assert receiver.ids() == set(ids)  # every event, none lost
    bodies = defaultdict(set)
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
        bodies[request.headers["webhook-id"]].add(request.body)
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same event under the same id
    assert count(db, status="pending") == 0 and count(db, status="dead") == 0


@pytest.mark.mariadb
def test_two_dispatchers_share_the_work_without_double_claims(mariadb):
    db, config = mariadb
    ws, acc = workspace_with_account(db)
    with Receiver() as receiver:
        add_endpoint(db, ws, receiver.url)
        with db.session() as session:
            ids = [events.record(session, type="message.status", workspace_id=ws, account_id=acc, data={"n": i})
                   for i in range(300)]
        procs = [start_dispatcher(config, f"host:{n}") for n in (1, 2)]
        try:
            assert wait_until(lambda: all_delivered(db, len(ids), *procs), timeout=60)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            assert [proc.wait(20) for proc in procs] == [0, 0]
    assert receiver.ids() == set(ids)
    assert len(receiver.requests) == len(ids)  # nobody crashed: nothing was sent twice


@pytest.mark.mariadb
def test_the_dispatcher_survives_a_database_outage(mariadb_server, mariadb):
    from tests.webhook_support import DispatcherThread, fast_settings

    if mariadb_server.private is None:
        pytest.skip("needs the private MariaDB server (BLAZZ_TEST_DATABASE_URL is set)")
    db, _ = mariadb
    ws, acc = workspace_with_account(db)
    with Receiver() as receiver:
        add_endpoint(db, ws, receiver.url)
        with DispatcherThread(db, fast_settings()) as thread:
            mariadb_server.private.stop()
            time.sleep(2)  # several claim rounds fail meanwhile
            mariadb_server.private.restart()
            with db.session() as session:
                event_id = events.record(session, type="message.received", workspace_id=ws, account_id=acc, data={})
            assert receiver.wait_for(lambda r: event_id in r.ids(), timeout=30)
            assert thread.thread.is_alive()
