"""The lease protocol with real daemon processes on MariaDB (fake provider, short timings).

Three daemons share 60 accounts; one is then SIGKILLed, SIGTERMed or SIGSTOPped, and every
test ends with the journal invariant (tests/daemon_helpers.check_journal): per account,
epochs strictly increase and no two daemons drive it at once. Timings: heartbeat and claim
every 0.5 s, lease TTL 4 s; margins are generous (behaviour, not speed).
"""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from sqlalchemy import select

from blazzctl.db import Database
from blazzctl.models import WhatsAppAccount
from daemons.session import leases
from daemons.session.status import LeaseLost, StatusWriter
from tests.daemon_helpers import (FAST, Fleet, daemon_rows, migrate, open_transactions, owners, per_owner,
                                  seed_accounts, spread, statuses, wait_for, wait_for_daemons)

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

TTL = FAST["lease_ttl"]
CLAIM = FAST["claim_interval"]
ACCOUNTS = 60


@pytest.fixture
def db(mariadb_url):
    migrate(mariadb_url)
    database = Database(mariadb_url)
    yield database
    database.dispose()


@pytest.fixture
def fleet(tmp_path, mariadb_url):
    with Fleet(tmp_path / "fleet", mariadb_url) as f:
        yield f


def converge(db, fleet: Fleet, names: set[str], timeout: float = 30) -> dict:
    """Wait until every runnable account is owned by one of ``names`` and evenly spread."""
    def done():
        snap = owners(db)
        counts = per_owner(snap)
        if all(owner in names for owner, _ in snap.values()) and spread(counts, names) <= 2:
            return snap
        return None

    return wait_for(done, timeout, message=lambda: f"all claimed by {sorted(names)}: {per_owner(owners(db))}\n"
                                                   f"{fleet.logs()}")


def lease_expiry(db, ids) -> dict[int, float]:
    """{account: lease expiry as a wall-clock timestamp} (the database runs on this host)."""
    with db.session() as s:
        return {r.id: r.lease_expires_at.timestamp() for r in s.execute(
            select(WhatsAppAccount.id, WhatsAppAccount.lease_expires_at).where(WhatsAppAccount.id.in_(list(ids))))}


def all_connected(db, ids) -> bool:
    st = statuses(db)
    return all(st[i] == "connected" for i in ids)


def three(db, fleet: Fleet) -> tuple[list, dict]:
    """Three daemons on two hosts over 60 running accounts, converged and connected."""
    ids = seed_accounts(db, ACCOUNTS)
    daemons = fleet.start_many(3, hosts=["host-a", "host-b"])
    names = {d.name for d in daemons}
    wait_for_daemons(db, 3, fleet=fleet)
    snap = converge(db, fleet, names)
    wait_for(lambda: all_connected(db, ids), 20, message=lambda: f"all connected: {statuses(db)}")
    wait_for(lambda: len(fleet.check().intervals) >= ACCOUNTS, 10, message="a journal start line per account")
    return daemons, snap


def assert_invariant(fleet: Fleet):
    report = fleet.check()
    assert report.violations == [], "\n".join(report.violations[:20])
    assert report.double_owner == 0
    return report


def test_three_daemons_share_sixty_accounts_evenly(db, fleet):
    daemons, snap = three(db, fleet)
    counts = per_owner(snap)
    assert set(counts) == {d.name for d in daemons}
    assert sum(counts.values()) == ACCOUNTS
    assert spread(counts, [d.name for d in daemons]) <= 2, counts
    assert all(epoch >= 1 for _owner, epoch in snap.values())
    rows = daemon_rows(db)
    assert {rows[d.name]["status"] for d in daemons} == {"running"}
    # The first account to connect became the workspace's primary, and only one did.
    with db.session() as s:
        assert len(s.scalars(select(WhatsAppAccount.id).where(WhatsAppAccount.is_primary.is_(True))).all()) == 1
    # Every account runs one fake session, started by its owner under its current epoch.
    report = assert_invariant(fleet)
    live = {iv.account_id: (iv.daemon, iv.epoch) for iv in report.intervals if iv.end == float("inf")}
    assert live == {a: (o, e) for a, (o, e) in owners(db).items()}


def test_sigkill_accounts_reowned_after_the_ttl_not_before(db, fleet):
    daemons, _ = three(db, fleet)
    victim = daemons[0]
    before = owners(db)
    theirs = {a: e for a, (o, e) in before.items() if o == victim.name}
    assert theirs
    killed_at = time.monotonic()
    fleet.kill(victim)
    # The earliest moment any of its leases may be taken over (database clock = this host's clock).
    expires = min(lease_expiry(db, theirs).values()) - time.time() + killed_at
    # Renewed every 0.5 s, so normally ~TTL ahead; a loaded machine may delay renewals a little.
    assert expires - killed_at > 1.0, f"its leases were about to expire at the kill ({expires - killed_at:.2f} s)"

    # Not before its leases expire (about the TTL after its last renewal) ...
    while time.monotonic() < expires - 0.2:
        snap = owners(db)
        moved = {a: snap[a] for a in theirs if snap[a][0] != victim.name}
        assert not moved, (f"taken over {time.monotonic() - killed_at:.2f} s after SIGKILL, "
                           f"{expires - time.monotonic():.2f} s before the lease expired: {moved}")
        time.sleep(0.1)

    # ... and all of them soon after it.
    others = {d.name for d in daemons[1:]}
    wait_for(lambda: all(owners(db)[a][0] in others for a in theirs), TTL + CLAIM + 10,
             message=lambda: f"re-owned after SIGKILL: {per_owner(owners(db))}")
    assert time.monotonic() >= expires
    snap = owners(db)
    assert all(snap[a][1] > epoch for a, epoch in theirs.items()), "a new owner must come with a higher epoch"
    wait_for(lambda: all_connected(db, theirs), 20, message=lambda: f"reconnected: {statuses(db)}")
    wait_for(lambda: spread(per_owner(owners(db)), others) <= 2, 20, message="spread over the survivors")
    assert_invariant(fleet)


def test_sigterm_releases_at_once_exits_0_and_marks_stopped(db, fleet):
    daemons, _ = three(db, fleet)
    victim = daemons[1]
    theirs = {a: e for a, (o, e) in owners(db).items() if o == victim.name}
    assert theirs
    started = time.monotonic()
    victim.send(signal.SIGTERM)
    assert victim.wait(15) == 0, victim.tail()
    # Released at once: by the time it has exited, none of its leases is held under its name.
    released_after = time.monotonic() - started
    assert not [a for a, (o, _) in owners(db).items() if o == victim.name], "leases left behind by the drain"
    assert released_after < TTL, released_after
    # Released at once: the lease columns are cleared by the drain, well before the TTL.
    others = {d.name for d in daemons if d is not victim}
    wait_for(lambda: all(owners(db)[a][0] in others for a in theirs), TTL - 1,
             message=lambda: f"re-owned after SIGTERM, before the TTL: {per_owner(owners(db))}\n{victim.tail()}")
    assert time.monotonic() - started < TTL
    assert daemon_rows(db)[victim.name]["status"] == "stopped"
    assert daemon_rows(db)[victim.name]["accounts_owned"] == 0
    # Its journal closes every session it had (a checkpointing stop), before anyone else started one.
    report = assert_invariant(fleet)
    assert report.stops_by(victim.name) >= set(theirs)
    wait_for(lambda: all_connected(db, theirs), 20, message=lambda: f"reconnected: {statuses(db)}")
    assert_invariant(fleet)


def test_sigstop_past_the_ttl_loses_its_accounts_and_closes_them(db, fleet):
    daemons, _ = three(db, fleet)
    victim = daemons[2]
    theirs = {a: e for a, (o, e) in owners(db).items() if o == victim.name}
    assert theirs
    others = {d.name for d in daemons if d is not victim}
    fleet.freeze(victim)
    try:
        wait_for(lambda: psutil.Process(victim.pid).status() == psutil.STATUS_STOPPED, 5, message="SIGSTOP")
        wait_for(lambda: all(owners(db)[a][0] in others for a in theirs), TTL + CLAIM + 15,
                 message=lambda: f"taken over from the frozen daemon: {per_owner(owners(db))}; "
                                 f"open transactions: {open_transactions(db)}")
        wait_for(lambda: all_connected(db, theirs), 20, message=lambda: f"reconnected: {statuses(db)}")
        taken = owners(db)
        assert all(taken[a][1] > e for a, e in theirs.items())
    finally:
        fleet.thaw(victim)

    # Once running again it notices the loss and closes those sessions (journal stop lines).
    def closed():
        report = fleet.check()
        return report if set(theirs) <= report.stops_by(victim.name) else None

    wait_for(closed, 10, message=lambda: f"the thawed daemon closes its lost sessions\n{victim.tail()}")
    time.sleep(2 * CLAIM + 0.5)  # let any stale write it might still attempt happen
    assert victim.alive(), victim.tail()
    # It never got an account back under its old lease (rebalancing may hand it some under new epochs).
    after = owners(db)
    assert not [a for a, e in theirs.items() if after[a] == (victim.name, e)]
    assert all(after[a][1] >= taken[a][1] for a in theirs)

    # Its fenced writes change nothing: a write under its old (owner, epoch) is refused.
    writer = StatusWriter(db, victim.name)
    account_id, epoch = next(iter(theirs.items()))
    with pytest.raises(LeaseLost):
        writer.set_fields(account_id, epoch, status_reason="stale write")
    with db.session() as s:
        assert not leases.fenced_update(s, account_id=account_id, owner=victim.name, epoch=epoch,
                                        values={"status_reason": "stale write"})
    with db.session() as s:
        assert s.get(WhatsAppAccount, account_id).status_reason != "stale write"

    # It keeps running and takes a fair share again (possibly of other accounts), under new epochs.
    wait_for(lambda: spread(per_owner(owners(db)), {d.name for d in daemons}) <= 2, 30,
             message=lambda: f"rebalanced after the thaw: {per_owner(owners(db))}")
    report = assert_invariant(fleet)
    cut = [iv for iv in report.intervals if iv.cut == "frozen"]
    assert {iv.account_id for iv in cut} == set(theirs), "its sessions end at the freeze, stopped right after SIGCONT"


def test_explain_claim_uses_the_claim_index_without_filesort(db):
    seed_accounts(db, 400)
    seed_accounts(db, 400, running=False, prefix="idle")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE TABLE whatsapp_accounts")
    plan = leases.explain_claim(db)
    text = repr(plan)
    rows = [r for r in plan if r.get("table") == "whatsapp_accounts"]
    assert rows, text
    row = rows[0]
    assert row["key"] == "ix_whatsapp_accounts_claim", text
    assert "filesort" not in (row.get("Extra") or "").lower(), text
    assert row["type"] in ("range", "ref"), text


# --- the invariant checker itself (no database): it must be able to fail ------------------------------

def _journal(tmp_path, lines):
    import json

    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps({"pid": 1, **line}) + "\n" for line in lines))
    return path


def test_journal_checker_accepts_a_clean_handover_and_flags_overlaps(tmp_path):
    from tests.daemon_helpers import check_journal

    clean = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "stop", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 12.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 12.5},
    ])
    report = check_journal(clean)
    assert (report.violations, report.double_owner, report.starts, report.stops) == ([], 0, 2, 1)
    assert report.live() == {1: ["b:1"]} and report.stops_by("a:1") == {1}

    overlap = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 11.0},
        {"event": "stop", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 12.0},
    ])
    assert check_journal(overlap).double_owner == 1

    stale_epoch = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "a:1", "t": 10.0},
        {"event": "stop", "account_id": 1, "epoch": 2, "daemon": "a:1", "t": 11.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 12.0},
    ])
    assert "strictly increase" in check_journal(stale_epoch).violations[0]


def test_journal_checker_ends_killed_sessions_at_the_kill_and_frozen_ones_at_the_freeze(tmp_path):
    from tests.daemon_helpers import check_journal

    killed = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 20.0},
    ])
    assert check_journal(killed, killed={"a:1": 15.0}).violations == []
    assert check_journal(killed, killed={"a:1": 25.0}).double_owner == 1
    assert check_journal(killed).double_owner == 1  # not killed: still live

    frozen = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 20.0},
        {"event": "stop", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 25.3},
    ])
    assert check_journal(frozen, frozen={"a:1": [(12.0, 25.0)]}).violations == []  # stopped right after SIGCONT
    assert check_journal(frozen, frozen={"a:1": [(12.0, 22.0)]}).double_owner == 1  # ran on after the thaw
