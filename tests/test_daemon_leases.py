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
    fenced = [iv for iv in report.intervals if iv.cut == "fenced" and iv.daemon == victim.name]
    assert {iv.account_id for iv in fenced} == set(theirs), "its pages went blank by themselves while it was frozen"


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


def test_journal_checker_excuses_no_frozen_or_killed_daemon(tmp_path):
    from tests.daemon_helpers import check_journal

    # A page without a stop line is live to the end, whatever happened to its daemon: the browser
    # is a separate process and writes the stop itself (fenced by the deadline, or orphaned).
    unstopped = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 20.0},
    ])
    assert check_journal(unstopped).double_owner == 1

    fenced = _journal(tmp_path, [
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "stop", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 19.0, "fenced": True},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 20.0},
    ])
    report = check_journal(fenced)
    assert report.violations == [] and [iv.cut for iv in report.intervals] == ["fenced", ""]

    late = _journal(tmp_path, [  # the page went blank only after the next owner's started
        {"event": "start", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 10.0},
        {"event": "start", "account_id": 1, "epoch": 2, "daemon": "b:1", "t": 20.0},
        {"event": "stop", "account_id": 1, "epoch": 1, "daemon": "a:1", "t": 20.5, "fenced": True},
    ])
    assert check_journal(late).double_owner == 1


@pytest.mark.parametrize("runnable, caps, level", [
    (10, [3, 50], 7),       # experiment 7: the roomy daemon takes what the full one cannot
    (10, [50, 50], 5),      # equal capacities: the even share, as before
    (11, [50, 50], 6),
    (10, [3, 3], 3),        # not enough room anywhere: everyone full
    (0, [3, 50], 0),
    (9, [1, 1, 50], 7),
    (10, [0, 4], 6),        # 0: a row from before capacities were recorded, unlimited
])
def test_water_level_pours_accounts_over_capacities(runnable, caps, level):
    assert leases.water_level(runnable, caps) == level
    assert sum(min(c or runnable, level) for c in caps) >= min(runnable, sum(c or runnable for c in caps))


def test_a_daemon_with_room_takes_what_a_full_one_cannot(db, tmp_path, mariadb_url):
    """Experiment 7: capacities 3 and 50 over 10 accounts; the even share (5) would leave 2 unowned."""
    ids = seed_accounts(db, 10)
    with Fleet(tmp_path / "fleet", mariadb_url, daemon=FAST, per_host={"host-b": {"capacity": 3}}) as fleet:
        small, big = fleet.start(1, host="host-b"), fleet.start(1, host="host-a")
        wait_for_daemons(db, 2, fleet=fleet)

        def settled():
            counts = per_owner(owners(db))
            return counts if counts.get(None, 0) == 0 and counts.get(small.name) == 3 else None

        counts = wait_for(settled, 30, message=lambda: f"every account owned: {per_owner(owners(db))}\n{fleet.logs()}")
        assert counts[big.name] == 7 and len(ids) == 10
        time.sleep(3 * CLAIM)  # and it stays so: nobody hands accounts back and forth
        assert per_owner(owners(db)) == counts
        assert_invariant(fleet)


def test_rows_locked_elsewhere_do_not_starve_the_renewal(db, fleet, mariadb_url):
    """Experiment 6: queued messages whose rows an unrelated session holds locked for 3 TTLs. The
    sends wait on the locks (threads and connections of the work pool), but the renewal has its
    own thread and connection: no self-fencing, no lost lease, and the messages go out afterwards."""
    import pymysql
    from sqlalchemy.engine import make_url

    from blazzctl.enums import Direction
    from blazzctl.models import Message

    ids = seed_accounts(db, 10)
    with db.session() as s:
        workspace_id = s.scalar(select(WhatsAppAccount.workspace_id).where(WhatsAppAccount.id == ids[0]))
        messages = [Message(workspace_id=workspace_id, whatsapp_account_id=a, chat_jid="6281234567890@c.us",
                            direction=Direction.OUT, body=f"locked {a}") for a in ids[:8]]
        s.add_all(messages)
        s.flush()
        message_ids = [m.id for m in messages]
    url = make_url(mariadb_url)
    locker = pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password or "",
                             database=url.database, autocommit=False)
    try:
        with locker.cursor() as cur:
            cur.execute(f"SELECT id FROM messages WHERE id IN ({','.join(map(str, message_ids))}) FOR UPDATE")
        daemon = fleet.start(1)
        wait_for(lambda: all_connected(db, ids), 30, message=lambda: f"all connected: {statuses(db)}\n{fleet.logs()}")
        held = owners(db)
        assert {owner for owner, _ in held.values()} == {daemon.name}
        time.sleep(3 * TTL)
        assert owners(db) == held, fleet.logs()  # same owner, same epochs: never lost, never re-claimed
        assert "self-fencing" not in daemon.log.read_text(), fleet.logs()
    finally:
        locker.rollback()
        locker.close()

    def sent():
        with db.session() as s:
            return all(st == "sent" for st in s.scalars(select(Message.status).where(Message.id.in_(message_ids))))

    wait_for(sent, 60, message=lambda: f"the locked messages sent once the locks went\n{fleet.logs()}")
    assert_invariant(fleet)


def test_a_daemon_partitioned_mid_renewal_does_not_strand_its_accounts(db, tmp_path, mariadb_url):
    """Experiment 5: host-a reaches the database through a proxy that is cut (no FIN, no RST) right
    after it forwarded a renewal's UPDATE: the server holds that transaction's row locks and the
    claim's SKIP LOCKED passes over them. The server must roll it back (idle_transaction_timeout
    about a TTL) so host-b owns every account within TTL + claim interval + 15 s."""
    from sqlalchemy.engine import make_url

    from tests.fakes.tcp_proxy import PartitionProxy

    ids = seed_accounts(db, 10)
    parsed = make_url(mariadb_url)
    proxy = PartitionProxy(parsed.port)
    try:
        via_proxy = parsed.set(port=proxy.port).render_as_string(hide_password=False)
        with Fleet(tmp_path / "fleet", mariadb_url, daemon=FAST, urls={"host-a": via_proxy}) as fleet:
            cut_off = fleet.start(1, host="host-a")
            wait_for(lambda: all_connected(db, ids) and set(per_owner(owners(db))) == {cut_off.name}, 30,
                     message=lambda: f"host-a owns all: {per_owner(owners(db))}\n{fleet.logs()}")
            proxy.partition_after(b"UPDATE whatsapp_accounts SET lease_expires_at")
            assert proxy.partitioned.wait(10), "no renewal went through the proxy"
            cut_at = time.monotonic()
            other = fleet.start(1, host="host-b")
            wait_for(lambda: set(per_owner(owners(db))) == {other.name}, TTL + CLAIM + 15 + 5,
                     message=lambda: f"host-b owns all: {per_owner(owners(db))}\n{fleet.logs()}")
            assert time.monotonic() - cut_at <= TTL + CLAIM + 15
            assert "self-fencing" in cut_off.log.read_text()  # and host-a closed its sessions itself
            report = fleet.check()
            assert report.violations == [], "\n".join(report.violations[:20])
    finally:
        proxy.close()


def test_a_dead_daemons_connection_that_still_holds_its_accounts_locked_is_ended(db, fleet, mariadb_url):
    """Experiment 5 where the server would not drop the connection by itself (MySQL's wait_timeout is
    hours; a connection that never set an idle timeout): "ghost:1" died mid-renewal, its lease
    connection (recorded in its daemon row) still holds 4 expired accounts locked. A live daemon
    ends that connection and owns them within TTL + claim interval + 15 s. A lock held by a
    connection no daemon recorded is not touched: that account waits until its holder lets go."""
    import pymysql
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    ids = seed_accounts(db, 6)
    stranded, bystanders_row = ids[:4], ids[5]
    url = make_url(mariadb_url)

    def connect():
        return pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password or "",
                               database=url.database, autocommit=False)

    ghost, bystander = connect(), connect()
    try:
        with db.session() as s:
            s.execute(text("INSERT INTO session_daemons (name, host, instance, status, capacity, accounts_owned, "
                           "heartbeat_at, db_connection_id) VALUES ('ghost:1', 'ghost', 1, 'running', 0, 4, "
                           "UTC_TIMESTAMP(6) - INTERVAL 60 SECOND, :cid)"), {"cid": ghost.thread_id()})
            s.execute(text(f"UPDATE whatsapp_accounts SET owner = 'ghost:1', lease_epoch = 1, lease_expires_at = "
                           f"UTC_TIMESTAMP(6) - INTERVAL 10 SECOND WHERE id IN ({','.join(map(str, stranded))})"))
        with ghost.cursor() as cur:  # the renewal's UPDATE went through; its COMMIT never came
            cur.execute(f"UPDATE whatsapp_accounts SET lease_expires_at = lease_expires_at "
                        f"WHERE id IN ({','.join(map(str, stranded))})")
        with bystander.cursor() as cur:
            cur.execute(f"SELECT id FROM whatsapp_accounts WHERE id = {bystanders_row} FOR UPDATE")
        started = time.monotonic()
        live = fleet.start(1, host="host-b")
        wait_for(lambda: all(owners(db)[a][0] == live.name for a in stranded), TTL + CLAIM + 15 + 5,
                 message=lambda: f"host-b owns the stranded accounts: {owners(db)}\n{fleet.logs()}")
        assert time.monotonic() - started <= TTL + CLAIM + 15
        with pytest.raises(pymysql.err.OperationalError):
            ghost.ping(reconnect=False)
        assert "still held its accounts locked" in live.log.read_text()
        time.sleep(2 * TTL)
        assert owners(db)[bystanders_row][0] is None  # still locked by the bystander, who was left alone
        bystander.ping(reconnect=False)
        bystander.rollback()
        wait_for(lambda: owners(db)[bystanders_row][0] == live.name, 3 * TTL,
                 message=lambda: f"host-b owns the bystander's account: {owners(db)}\n{fleet.logs()}")
    finally:
        for conn in (ghost, bystander):
            try:
                conn.close()
            except Exception:
                pass


@pytest.mark.parametrize("drain_timeout", [10.0, 3.0], ids=["closes-in-time", "drain-times-out"])
def test_a_drain_slower_than_the_ttl_never_lets_another_daemon_in_early(db, tmp_path, mariadb_url, drain_timeout):
    """Experiment 3: host-a's browsers take 1.5 TTL to close on SIGTERM. The drain keeps renewing
    and fencing until the last one is closed, so host-b cannot start any of them while host-a's is
    open; when the drain times out first, the rest are killed before their leases are handed back.
    Its log says "released" only for leases really released."""
    ids = seed_accounts(db, 6)
    per_host = {"host-a": {"drain_timeout": drain_timeout, "provider": {"stop_delay": 1.5 * TTL}}}
    with Fleet(tmp_path / "fleet", mariadb_url, daemon=FAST, per_host=per_host) as fleet:
        draining = fleet.start(1, host="host-a")
        wait_for(lambda: all_connected(db, ids), 30, message=lambda: f"all connected: {statuses(db)}\n{fleet.logs()}")
        other = fleet.start(1, host="host-b")
        wait_for_daemons(db, 2, fleet=fleet)
        time.sleep(2 * CLAIM)  # host-b holds its share; host-a keeps the rest
        theirs = {a for a, (o, _) in owners(db).items() if o == draining.name}
        assert theirs
        draining.send(signal.SIGTERM)
        assert draining.wait(30) == 0, draining.tail()
        wait_for(lambda: set(per_owner(owners(db))) == {other.name}, 2 * TTL + 10,
                 message=lambda: f"host-b owns all: {per_owner(owners(db))}\n{fleet.logs()}")
        report = assert_invariant(fleet)  # no account had both daemons' sessions live at once
        assert report.stops_by(draining.name) >= theirs
        text = draining.log.read_text()
        released = text.count("session released")
        if drain_timeout > 1.5 * TTL:
            assert released == len(theirs), text
        else:
            assert "drain timed out" in text and released < len(theirs), text


def test_a_send_frozen_on_its_way_to_the_page_is_refused_there_after_a_takeover(db, tmp_path, mariadb_url, cli):
    """Experiment 1: host-a hands a message to its page and is SIGSTOPped while the send is on its
    way (the fake's send_delay). Its lease expires and host-b takes the account. host-b's page is
    restored from the archive and cannot know the message, so host-b does not send it blind: after
    messages.resolve_timeout it is `unknown`. host-a's page left WhatsApp Web by itself at the lease
    deadline while host-a was frozen (the browser is another process), so after SIGCONT its late
    send reaches no page (had it come before, the page would have refused it: past the deadline
    it carries). `message resend` then sends it once."""
    import json

    from blazzctl.enums import Direction
    from blazzctl.models import Message

    outbox = tmp_path / "outbox.jsonl"
    messages = {"resolve_timeout": 3, "poll_interval": 0.1}
    per_host = {"host-a": {"provider": {"outbox": str(outbox), "send_delay": 2.0}, "messages": messages},
                "host-b": {"provider": {"outbox": str(outbox)}, "messages": messages}}
    ids = seed_accounts(db, 1)
    with Fleet(tmp_path / "fleet", mariadb_url, daemon=FAST, per_host=per_host) as fleet:
        stalled = fleet.start(1, host="host-a")
        wait_for(lambda: all_connected(db, ids), 30, message=lambda: f"connected: {statuses(db)}\n{fleet.logs()}")
        other = fleet.start(1, host="host-b")
        wait_for_daemons(db, 2, fleet=fleet)
        with db.session() as s:
            workspace_id = s.scalar(select(WhatsAppAccount.workspace_id).where(WhatsAppAccount.id == ids[0]))
            message = Message(workspace_id=workspace_id, whatsapp_account_id=ids[0], chat_jid="6281234567890@c.us",
                              direction=Direction.OUT, body="once")
            s.add(message)
            s.flush()
            message_id = message.id

        def status():
            with db.session() as s:
                return s.scalar(select(Message.status).where(Message.id == message_id))

        def outbox_daemons():
            return [json.loads(line)["daemon"] for line in outbox.read_text().splitlines() if line.strip()] \
                if outbox.exists() else []

        wait_for(lambda: status() == "handed", 15, interval=0.02, message=lambda: f"handed: {status()}")
        fleet.freeze(stalled)
        wait_for(lambda: owners(db)[ids[0]][0] == other.name, 3 * TTL, message=lambda: f"taken over\n{fleet.logs()}")
        wait_for(lambda: status() == "unknown", 20, message=lambda: f"unknown: {status()}\n{fleet.logs()}")
        assert outbox_daemons() == []  # host-b did not send it blind
        fleet.thaw(stalled)
        time.sleep(4.0)  # host-a's send_delay ends and its send reaches the page
        assert outbox_daemons() == [], "the frozen daemon's late send reached WhatsApp"
        assert "the page passed its lease deadline and left WhatsApp Web" in stalled.log.read_text(), stalled.tail()
        assert status() == "unknown"

        result = cli("message", "resend", str(ids[0]), str(message_id), db=mariadb_url)
        assert result.code == 0, result
        wait_for(lambda: status() == "sent", 20, message=lambda: f"sent after resend: {status()}\n{fleet.logs()}")
        assert outbox_daemons() == [other.name]
