"""`blazzctl daemon restart --rolling` with REAL WhatsApp Web sessions (issue 7).

Two ``blazz-session@N`` daemons run under the stand-in systemctl (``tests/fakes/systemctl``) with
the built-in provider (real Chromium) pointed at the fake WhatsApp Web, on one MariaDB database.
Two accounts are linked by scanning their QR codes through the fake and archived; the rolling
restart must then replace both daemons and bring both accounts back to ``connected`` from their
login archives/profiles: no QR shown, no new device linked on the phone, lease epochs that only
increase, and never two daemons' browsers running the same session at once (this last check
caught a browser left running, unowned, by a session released while Chromium was starting).

The gate of the rolling restart is about daemons and leases (a new pid, a fresh heartbeat, no
runnable account unowned), not sessions: it can pass while a handed-over account is still
``starting``, so the test waits for ``connected`` after the command returns.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, run_blazzctl
from tests.daemon_helpers import daemon_rows, migrate, wait_for, wait_for_daemons
from tests.systemd_helpers import FakeSystemd
from tests.webjs_helpers import (
    Recorder,
    account_row,
    archive_count,
    browser_processes,
    devices_of,
    kill_processes,
    wait_qr,
    wait_status,
    write_webjs_config,
)

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"),
]

PHONES = ("+4915550701", "+4915550702")


@pytest.fixture
def fake():
    from tests.fakes.wa_web import FakeWhatsAppWeb

    with FakeWhatsAppWeb(port=0, ref_interval=20.0) as fake:
        yield fake


class BrowserWatch:
    """Samples the process table: which daemon's Chromium runs which session profile, at each moment.

    A browser (a Chromium process without ``--type=``) belongs to the daemon among its ancestors;
    a session id seen under two different daemon pids in one sample means two daemons drove the
    same account at once.
    """

    def __init__(self, systemd: FakeSystemd, session_ids: dict[int, str], interval: float = 0.2) -> None:
        self.systemd, self.session_ids, self.interval = systemd, session_ids, interval
        self.overlaps: list[tuple[float, int, set[tuple[int, int]]]] = []
        self.daemon_pids: set[int] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a process that vanished mid-sample: look again
                pass
            self._stop.wait(self.interval)

    def sample(self) -> None:
        pids = {p for n in (1, 2) if (p := self.systemd.pid(n))}
        self.daemon_pids |= pids
        holders: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for daemon_pid in self.daemon_pids:
            for proc in browser_processes(daemon_pid):
                try:
                    cmd = proc.cmdline()
                except psutil.Error:
                    continue
                if not cmd or any(a.startswith("--type=") for a in cmd):
                    continue
                data_dir = next((a for a in cmd if a.startswith("--user-data-dir=")), "")
                for aid, sid in self.session_ids.items():
                    if sid and sid in data_dir:
                        holders[aid].add((daemon_pid, proc.pid))
        self.samples += 1
        for aid, owners in holders.items():
            if len({daemon for daemon, _ in owners}) > 1:
                self.overlaps.append((round(time.monotonic(), 2), aid, owners))

    def __enter__(self) -> "BrowserWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


class Timeline:
    """Every change of the daemon rows (pid, status) and the accounts' (status, owner, epoch), timestamped."""

    def __init__(self, db, account_ids: list[int], interval: float = 0.1) -> None:
        self.db, self.account_ids, self.interval = db, account_ids, interval
        self.events: list[tuple[float, str, object, tuple]] = []
        self._last: dict[tuple[str, object], tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                for name, row in daemon_rows(self.db).items():
                    self._note(now, "daemon", name, (row["pid"], row["status"]))
                for aid in self.account_ids:
                    row = account_row(self.db, aid)
                    self._note(now, "account", aid, (row["status"], row["owner"], row["lease_epoch"]))
            except Exception:  # noqa: BLE001 - try again next tick
                pass
            self._stop.wait(self.interval)

    def _note(self, t: float, kind: str, key: object, value: tuple) -> None:
        if self._last.get((kind, key)) != value:
            self._last[(kind, key)] = value
            self.events.append((t, kind, key, value))

    def first(self, kind: str, key: object, match) -> float | None:
        return next((t for t, k, n, v in self.events if k == kind and n == key and match(v)), None)

    def at(self, t: float, kind: str, key: object) -> tuple | None:
        """The last value of ``key`` recorded at or before ``t``."""
        found = None
        for when, k, n, v in self.events:
            if when > t:
                break
            if k == kind and n == key:
                found = v
        return found

    def story(self) -> str:
        t0 = self.events[0][0] if self.events else 0.0
        return "\n".join(f"{t - t0:7.2f} ({t:.2f}) {kind} {key} {value}" for t, kind, key, value in self.events)

    def __enter__(self) -> "Timeline":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def kill_everything_under(root: Path, systemd: FakeSystemd, known: set[int]) -> None:
    """Kill the daemons (their groups), their Chromium trees, and anything else running from ``root``."""
    doomed: dict[int, psutil.Process] = {}
    pids = set(known) | {p for n in (1, 2) if (p := systemd.pid(n))}
    for pid in pids:
        for proc in browser_processes(pid):
            doomed[proc.pid] = proc
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and any(str(root) in a for a in (proc.info["cmdline"] or [])):
                doomed[proc.pid] = proc
        except psutil.Error:
            continue
    systemd.close()
    kill_processes(list(doomed.values()))


def leftovers(root: Path) -> list[str]:
    """Processes still running from ``root`` that are not the live daemons' descendants."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(root) in a for a in cmd):
                shown = " ".join(a for a in cmd if str(root) in a or not a.startswith("--"))
                found.append(f"{proc.pid} ppid {proc.ppid()} {shown}")
        except psutil.Error:
            continue
    return found


def test_rolling_restart_keeps_real_sessions_connected_without_a_qr(cli, fake, mariadb_url, tmp_path):
    from blazzctl.db import Database

    migrate(mariadb_url)
    db = Database(mariadb_url)
    systemd = FakeSystemd(tmp_path)
    known_pids: set[int] = set()
    key = tmp_path / "keys" / "session.key"
    assert cli("key", "generate", "--file", str(key)).code == 0
    config = write_webjs_config(tmp_path / "blazz.yaml", url=mariadb_url, fake_url=fake.url,
                                state_dir=tmp_path / "state", host="host-a", key_file=key,
                                daemon={"instances": 2, "unowned_grace": 45})
    env = {**systemd.env, "BLAZZ_CONFIG": str(config)}

    def logs() -> str:
        return systemd.logs()

    try:
        installed = run_blazzctl("units", "install", "--dest", str(systemd.unit_dir), env=env)
        assert installed.code == 0, installed
        systemd.drop_in({"BLAZZ_CONFIG": str(config), "PYTHONPATH": str(REPO)})
        for n in (1, 2):
            started = systemd.systemctl("start", f"blazz-session@{n}.service")
            assert started.returncode == 0, (started.stderr, logs())
            known_pids.add(systemd.pid(n))
        wait_for_daemons(db, 2, 30)

        # Two accounts linked through the fake's "phone", then archived.
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        accounts = []
        for i, phone in enumerate(PHONES):
            added = cli("account", "add", "--workspace", "acme", "--name", f"roll-{i}", "--json", db=mariadb_url)
            assert added.code == 0, added
            account = added.json()
            assert cli("account", "connect", str(account["id"]), "--no-wait", db=mariadb_url).code == 0
            fake.link(wait_qr(db, account["id"], 60), phone)
            accounts.append(account)
        for account, phone in zip(accounts, PHONES):
            row = wait_status(db, account["id"], "connected", 60)
            assert row["phone_number"] == phone
        for account in accounts:
            wait_for(lambda a=account: account_row(db, a["id"])["auth_saved_at"] is not None
                     and archive_count(db, a["id"])[0] >= 1, 30,
                     message=lambda a=account: f"a login archive for {a['id']}: {account_row(db, a['id'])}\n{logs()}")
        devices_before = {p: sorted(d["device"] for d in devices_of(fake, p)) for p in PHONES}
        assert all(len(d) == 1 for d in devices_before.values()), devices_before
        before = {n: systemd.pid(n) for n in (1, 2)}
        owners_before = {a["id"]: account_row(db, a["id"])["owner"] for a in accounts}

        recorders = [Recorder(db, a["id"]) for a in accounts]
        watch = BrowserWatch(systemd, {a["id"]: a["session_id"] for a in accounts})
        for r in recorders:
            r.__enter__()
        try:
            with watch, Timeline(db, [a["id"] for a in accounts]) as timeline:
                result = run_blazzctl("daemon", "restart", "--rolling", "--timeout", "120", "--json",
                                      env=env, timeout=300)
                assert result.code == 0, (result, logs())
                for n in (1, 2):
                    known_pids.add(systemd.pid(n))
                # The gate asks for daemons and leases, not for sessions: wait for connected here.
                for account in accounts:
                    wait_status(db, account["id"], "connected", 60)
        finally:
            for r in recorders:
                r.__exit__(None, None, None)

        data = result.json()
        story = timeline.story()
        assert [r["instance"] for r in data["restarted"]] == [1, 2]
        after = {n: systemd.pid(n) for n in (1, 2)}
        for n in (1, 2):
            assert after[n] is not None and after[n] != before[n], (before, after)

        for account, phone, seen in zip(accounts, PHONES, recorders):
            row = account_row(db, account["id"])
            assert (row["status"], row["phone_number"], row["qr_code"]) == ("connected", phone, None), (row, story)
            assert seen.qrs() == [], (seen.seen, story)
            assert "qr_scanning" not in seen.statuses(), (seen.seen, story)
            assert sorted(d["device"] for d in devices_of(fake, phone)) == devices_before[phone], \
                "the phone linked a new device during the restart"
            # Lease epochs only increase; a change of owner always comes with a new epoch.
            epochs = [s[4] for s in seen.seen if s[4] is not None]
            assert epochs == sorted(epochs), (seen.seen, story)
            last: tuple[str, int] | None = None
            for _status, _reason, _qr, owner, epoch in seen.seen:
                if owner is None:
                    continue
                if last is not None and owner != last[0]:
                    assert epoch > last[1], f"owner {last} -> {owner} without a new epoch: {seen.seen}"
                last = (owner, epoch)
            # Each account was handed over at least once (its owner's daemon was restarted).
            owners_seen = [s[3] for s in seen.seen]
            assert any(o != owners_before[account["id"]] for o in owners_seen) or len(set(epochs)) > 1, \
                seen.seen
        assert watch.samples > 10
        assert watch.overlaps == [], (watch.overlaps, story)
        # The old daemons closed their browsers (the stand-in kills only a stopped daemon's process
        # group, and Playwright starts Chromium in a group of its own). Each live browser has two
        # chrome_crashpad_handler processes (re-parented to init); they exit with their browser.
        live = set(after.values())

        def strays() -> list[str]:
            ours = {p.pid for pid in live for p in browser_processes(pid)} | live
            browsers = [p for pid in live for p in browser_processes(pid)
                        if p.name().startswith("chromium") and not any(a.startswith("--type=") for a in p.cmdline())]
            found = [line for line in leftovers(tmp_path) if int(line.split()[0]) not in ours]
            crashpad = [line for line in found if "chrome_crashpad_handler" in line]
            others = [line for line in found if "chrome_crashpad_handler" not in line]
            return others + (crashpad if len(crashpad) > 2 * len(browsers) else [])

        wait_for(lambda: not strays(), 15, message=lambda: f"no process left behind by the old daemons: {strays()}")
    finally:
        kill_everything_under(tmp_path, systemd, {p for p in known_pids if p})
        db.dispose()
