"""The fleet's WhatsApp Web policy in the database (blazzctl/services/wa_versions.py): what a
failure makes of a build, which build each account wants, and the operators' commands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.daemon_helpers import migrate

A, B, C = "2.3000.1000000001", "2.3000.1000000002", "2.3000.1000000003"


@pytest.fixture
def db(sqlite_url):
    from blazzctl.db import Database

    migrate(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()


def seen(db, version: str, *, connected: bool = True, age_days: float = 0) -> None:
    from blazzctl.models import WaWebVersion
    from blazzctl.models.base import utcnow
    from blazzctl.services import wa_versions

    with db.session() as s:
        wa_versions.seen(s, version=version, html=f"<html>{version}</html>".encode(), live=True)
        if connected:
            wa_versions.connected(s, version=version)
        if age_days:
            row = s.query(WaWebVersion).filter_by(version=version).one()
            row.first_seen_at = utcnow() - timedelta(days=age_days)


def fail(db, version: str, kind: str = "stuck_loading", *, act: bool = True, threshold: int = 3):
    from blazzctl.services import wa_versions

    with db.session() as s:
        return wa_versions.failure(s, version=version, account_id=1, kind=kind, detail="d", daemon="h:1",
                                   threshold=threshold, window=600, act=act)


def policy(db):
    from blazzctl.services import wa_versions

    with db.session() as s:
        return wa_versions.policy(s)


def states(db) -> dict[str, str]:
    from blazzctl.services import wa_versions

    with db.session() as s:
        return {v.version: v.state for v in wa_versions.list_versions(s)}


def test_a_new_build_that_fails_often_enough_is_bad_and_the_last_good_one_is_pinned(db):
    seen(db, A)
    seen(db, B, connected=False)
    assert [fail(db, B).bad for _ in range(2)] == [None, None]  # below the threshold: counted only
    verdict = fail(db, B)
    assert (verdict.bad, verdict.pinned) == (B, A)
    assert states(db) == {A: "pinned", B: "bad"}
    assert policy(db).wanted(7) == A and B in policy(db).unusable
    assert fail(db, B).bad is None  # already bad: nothing more happens


def test_the_self_check_condemns_at_once_but_an_old_build_is_not_judged_by_stuck_pages(db):
    seen(db, A, age_days=30)
    for _ in range(5):  # pages stuck on a build that has served for a month: the network, not the build
        assert fail(db, A).bad is None
    seen(db, B, connected=False)
    assert fail(db, B, "self_check").bad == B
    assert states(db)[A] == "pinned"


def test_a_pinned_build_is_never_acted_on_and_auto_pin_off_only_counts(db):
    from blazzctl.services import wa_versions

    seen(db, A)
    seen(db, B)
    with db.session() as s:
        wa_versions.pin(s, version=B, by="op")
    assert fail(db, B, "self_check").bad is None  # the operator's choice
    seen(db, C, connected=False)
    assert fail(db, C, "self_check", act=False).bad is None
    with db.session() as s:
        views = {v.version: v for v in wa_versions.list_versions(s)}
    assert views[C].state == "live" and views[C].failures_hour == 1 and views[B].failures_day == 1


def test_with_no_good_build_stored_the_bad_one_is_marked_and_nothing_is_pinned(db):
    seen(db, A, connected=False)  # never got a session connected
    verdict = fail(db, A, "self_check")
    assert (verdict.bad, verdict.pinned) == (A, None)
    assert policy(db).pinned is None


def test_operators_pin_canary_promote_reject_and_bad_input_writes_nothing(db, sqlite_url):
    from blazzctl.enums import AccountStatus
    from blazzctl.errors import BlazzError
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import accounts, wa_versions, workspaces

    seen(db, A)
    seen(db, B)
    with db.session() as s:
        ws = workspaces.create(s, name="acme")
        made = [accounts.add(s, workspace=ws, name=f"a{i}") for i in range(6)]
        s.flush()
        for i, account in enumerate(made):  # two daemons, three accounts each
            account.status, account.owner = AccountStatus.CONNECTED, f"host-{'ab'[i % 2]}:1"
        ids = sorted(a.id for a in made)
    with db.session() as s:
        chosen = wa_versions.canary(s, version=B, accounts=None, percent=34, by="op").canary_accounts
    with db.session() as s:
        owners = {a.owner for a in s.query(WhatsAppAccount).filter(WhatsAppAccount.id.in_(chosen))}
    assert len(chosen) == 3 and owners == {"host-a:1", "host-b:1"}  # ceil(6 * 34 %), from both daemons
    p = policy(db)
    assert {a: p.wanted(a) for a in ids} == {a: (B if a in chosen else None) for a in ids}
    with db.session() as s:
        wa_versions.pin(s, version=A, by="op")
    p = policy(db)
    assert {a: p.wanted(a) for a in ids} == {a: (B if a in chosen else A) for a in ids}  # the canary stays
    with db.session() as s:
        wa_versions.promote(s, version=B, by="op")
    assert states(db) == {A: "old", B: "pinned"} and all(policy(db).wanted(a) == B for a in ids)
    with db.session() as s:
        assert wa_versions.reject(s, version=B, by="op") == A  # the last good build before it
    assert states(db) == {A: "pinned", B: "bad"}

    before = states(db)
    for call in (lambda s: wa_versions.pin(s, version="9.9.9", by="op"),
                 lambda s: wa_versions.canary(s, version=A, accounts=0, percent=None, by="op"),
                 lambda s: wa_versions.canary(s, version=A, accounts=1, percent=5, by="op"),
                 lambda s: wa_versions.canary(s, version=A, accounts=1, percent=None, by="op")):  # pinned already
        with pytest.raises(BlazzError):
            with db.session() as s:
                call(s)
    assert states(db) == before
    with db.session() as s:
        wa_versions.deprecated(s, version=A, daemon="h:1")
    with pytest.raises(BlazzError, match="refused"):
        with db.session() as s:
            wa_versions.pin(s, version=A, by="op")
    assert policy(db).pinned is None
