"""The systemd watchdog is fed only while a freeze would be caught before the leases expire.

WatchdogSec is 0.4 x lease TTL (units.watchdog_sec); the claimer sends WATCHDOG=1 only while
its last confirmed renewal is younger than TTL - WatchdogSec - 0.15 x TTL, or it holds nothing.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import uuid

import pytest

from blazzctl.services import units
from blazzctl.settings import DaemonSettings, Settings
from daemons.session.claimer import PING_MARGIN, Claimer, boottime
from daemons.session.notify import Notifier


class _Db:
    def dispose(self) -> None:
        pass


class _Sessions:
    def __init__(self, owned: dict) -> None:
        self.owned = owned


def _claimer(ttl: float, owned: dict) -> Claimer:
    settings = dataclasses.replace(Settings(), daemon=DaemonSettings(lease_ttl=ttl, claim_interval=ttl / 6,
                                                                    heartbeat_interval=ttl / 6))
    watchdog = units.watchdog_sec(ttl)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "@blazz-test-nobody", "WATCHDOG_USEC": str(watchdog * 1_000_000)})
    claimer = Claimer(_Db(), _Sessions(owned), owner="h:1", settings=settings, notifier=notifier)
    return claimer


@pytest.mark.parametrize("ttl", [10.0, 30.0, 120.0])
def test_a_freeze_right_after_any_ping_is_killed_before_the_leases_expire(ttl):
    claimer = _claimer(ttl, owned={1: object()})
    now = 1000.0
    claimer.clock = lambda: now
    claimer.last_renewed = now
    watchdog = units.watchdog_sec(ttl)
    assert watchdog < 0.75 * ttl  # shorter than the fence deadline
    since = 0.0
    while since < ttl:
        now = claimer.last_renewed + since
        if claimer.may_ping():
            # frozen from here: systemd fires after WatchdogSec, SIGKILLs the cgroup TimeoutAbortSec later
            assert since + watchdog + units.ABORT_SEC < ttl, (since, watchdog)
        since += 0.05
    now = claimer.last_renewed + claimer.cfg.claim_interval + 0.5  # a normal gap between renewals
    assert claimer.may_ping()
    now = claimer.last_renewed + claimer.fence_after
    assert not claimer.may_ping()
    claimer.sessions.owned.clear()  # self-fenced: nothing is driven, a database outage is no reason to die
    assert claimer.may_ping()
    claimer.close()


def test_the_fence_clock_counts_suspended_time():
    assert abs(boottime() - time.clock_gettime(time.CLOCK_BOOTTIME)) < 1
    before = time.monotonic()
    assert boottime() >= before  # it counts every suspend since boot on top of the monotonic clock


def test_the_unit_aborts_into_a_cgroup_kill_within_the_margin():
    for ttl in (10, 30, 40, 300):
        settings = dataclasses.replace(Settings(), daemon=DaemonSettings(lease_ttl=ttl, claim_interval=min(5, ttl / 3),
                                                                        heartbeat_interval=min(5, ttl / 4)))
        text = units.render(settings, instances=1, prefix="/opt/blazz", user="wa")[units.TEMPLATE]
        assert f"WatchdogSec={units.watchdog_sec(ttl)}\n" in text
        assert f"TimeoutAbortSec={units.ABORT_SEC}\n" in text
        assert units.ABORT_SEC < PING_MARGIN * ttl


@pytest.mark.mariadb
@pytest.mark.slow
def test_a_daemon_cut_off_from_the_database_stops_feeding_the_watchdog_until_it_has_fenced(tmp_path, mariadb_url):
    """Real process, real datagram socket: while its leases go unconfirmed the daemon goes silent
    (no WATCHDOG=1 in the window after TTL - WatchdogSec - margin), and pings again once it has
    closed its sessions (self-fenced: nothing is driven, so no restart loop)."""
    from sqlalchemy.engine import make_url

    from blazzctl.db import Database
    from tests.daemon_helpers import FAST, Fleet, migrate, seed_accounts, statuses, wait_for
    from tests.fakes.tcp_proxy import PartitionProxy

    ttl = FAST["lease_ttl"]
    watchdog = 0.4 * ttl
    migrate(mariadb_url)
    db = Database(mariadb_url)
    ids = seed_accounts(db, 3)
    name = f"blazz-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(0.2)
    pings: list[float] = []
    done = threading.Event()

    def listen():
        while not done.is_set():
            try:
                if b"WATCHDOG=1" in sock.recv(4096):
                    pings.append(time.monotonic())
            except OSError:
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    parsed = make_url(mariadb_url)
    proxy = PartitionProxy(parsed.port)
    try:
        via_proxy = parsed.set(port=proxy.port).render_as_string(hide_password=False)
        with Fleet(tmp_path / "fleet", via_proxy, daemon=FAST) as fleet:
            daemon = fleet.start(1, env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": str(int(watchdog * 1e6))})
            wait_for(lambda: all(statuses(db).get(i) == "connected" for i in ids), 30,
                     message=lambda: f"connected: {statuses(db)}\n{fleet.logs()}")
            time.sleep(1)
            assert pings and time.monotonic() - pings[-1] < 1.5, "fed while renewing"
            proxy.partition()
            cut = time.monotonic()
            wait_for(lambda: "self-fencing" in daemon.log.read_text(), 3 * ttl, message=fleet.logs)
            time.sleep(2)
            # The last renewal started at most one claim interval (0.5 s) before the cut; pings stop
            # TTL - WatchdogSec - margin after it and the fence comes at 0.75 TTL after it.
            quiet_from = cut + ttl - watchdog - PING_MARGIN * ttl + 0.1
            quiet_to = cut + 0.75 * ttl - FAST["claim_interval"] - 0.1
            assert quiet_to > quiet_from
            assert not [t for t in pings if quiet_from <= t <= quiet_to], (
                [round(t - cut, 2) for t in pings if t > cut])
            assert [t for t in pings if t > cut + 0.75 * ttl], "fed again once fenced"
    finally:
        done.set()
        proxy.close()
        sock.close()
        db.dispose()
