"""WhatsApp Web releases under the fleet's control (blazzctl/services/wa_versions.py,
daemons/session/versions.py): real daemons, real Chromium, the fake WhatsApp Web shipping builds.

Every test here has a fake of its own (``fake_wa_web``): it changes the build the fake serves."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import migrate, wait_for
from tests.webjs_helpers import Recorder, WebjsFleet, devices_of, wait_qr, wait_status

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium (apt-get install -y chromium)")]

A = "2.3000.1017054665"  # the fake's first build (tests.fakes.wa_web.WA_VERSION)
B = "2.3000.1017100001"
C = "2.3000.1017200002"


def builds(db) -> dict[int, tuple[str, str | None]]:
    """account id -> (status, the build its page last ran)."""
    from sqlalchemy import select

    from blazzctl.models import WhatsAppAccount as Acc

    with db.session() as s:
        return {r.id: (str(r.status), r.wa_version) for r in s.execute(select(Acc.id, Acc.status, Acc.wa_version))}


def versions(cli, url: str) -> dict[str, dict]:
    result = cli("webjs", "versions", "--json", db=url)
    assert result.code == 0, result
    return {v["version"]: v for v in result.json()}


def fleet_of(cli, tmp_path, fake, *, accounts: int, daemons: int, webjs: dict | None = None):
    """A migrated SQLite database, ``accounts`` linked accounts and a fleet of ``daemons``."""
    from blazzctl.db import Database

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    key = tmp_path / "keys" / "session.key"
    assert cli("key", "generate", "--file", str(key)).code == 0
    assert cli("workspace", "create", "acme", db=url).code == 0
    phones = {}
    for n in range(accounts):
        added = cli("account", "add", "--workspace", "acme", "--name", f"a{n}", "--json", db=url)
        assert added.code == 0, added
        phones[added.json()["id"]] = f"+49155501{n:02d}"
    fleet = WebjsFleet(tmp_path / "fleet", url, fake.url, key_file=key,
                       webjs={"snapshot_after": 1, "version_roll_rate": 30, "version_check_interval": 2,
                              **(webjs or {})})
    for n in range(daemons):
        fleet.start(1, host=f"host-{'abcd'[n]}")
    for account_id, phone in phones.items():
        assert cli("account", "connect", str(account_id), "--no-wait", db=url).code == 0
        fake.link(wait_qr(db, account_id, 60, fleet), phone)
        wait_status(db, account_id, "connected", 60, fleet)
    return url, db, fleet, phones


@pytest.mark.parametrize("dropped", ["WAWebSendMsgChatAction", "WAWebConnModel"],
                         ids=["self-check", "attach-fails"])
def test_a_release_that_breaks_the_bridge_is_rolled_back_by_the_fleet_itself(cli, tmp_path, dropped, fake_wa_web):
    """The fleet runs A. WhatsApp ships B, which lacks a module the bridge needs (found by the
    module self-check, or failing the bridge as it attaches), and every page reloads onto it. B
    is marked bad at the first failure, A (the last good build, its document stored) is pinned,
    and every account is back on A, served from the stored document, with no QR and one linked
    device each; health is CRITICAL naming B."""
    fake = fake_wa_web
    url, db, fleet, phones = fleet_of(cli, tmp_path, fake, accounts=3, daemons=2)
    with fleet:
        wait_for(lambda: versions(cli, url).get(A, {}).get("document_stored"), 20, message="A recorded")
        recorders = [Recorder(db, a).__enter__() for a in phones]
        try:
            fake.release(B, drop=[dropped])
            started = time.monotonic()
            assert fake.reload()["pages"] == len(phones)
            wait_for(lambda: versions(cli, url).get(B, {}).get("state") == "bad", 60,
                     message=lambda: f"B bad: {versions(cli, url)}\n{fleet.logs(30)}")
            # Each account left `connected` and came back: restarted after its page failed on B,
            # or moved by its daemon's roll (the fleet wanted A) before that failure was handled.
            wait_for(lambda: all(st == "connected" and v == A for st, v in builds(db).values())
                     and all(r.statuses()[-1:] == ["connected"] and set(r.statuses()) - {"connected"}
                             for r in recorders), 120,
                     message=lambda: f"{builds(db)}\n{[r.seen for r in recorders]}\n{fleet.logs(40)}")
            took = time.monotonic() - started
        finally:
            for r in recorders:
                r.__exit__(None, None, None)
        seen = versions(cli, url)
        assert seen[A]["state"] == "pinned" and seen[B]["state"] == "bad", seen
        assert "self-check failed" in seen[B]["reason"] and dropped in seen[B]["reason"], seen[B]
        assert seen[B]["document_stored"] and seen[B]["failures_last_hour"] >= 1
        assert seen[A]["accounts"] == len(phones)
        health = cli("health", "--json", db=url)
        checks = {c["name"]: c for c in health.json()["checks"]}
        assert checks["wa_web_versions"]["state"] == "CRITICAL" and B in checks["wa_web_versions"]["detail"]
        assert f"pinned to {A}" in checks["wa_web_versions"]["detail"]
        for r in recorders:
            assert r.qrs() == [] and "failed" not in r.statuses(), r.seen
        for phone in phones.values():
            assert len(devices_of(fake, phone)) == 1, "a phone linked a second device"
        assert took < 120
        # An operator who has seen it acknowledges B as bad: health is no longer critical.
        assert cli("webjs", "reject", B, db=url).code == 0
        checks = {c["name"]: c for c in cli("health", "--json", db=url).json()["checks"]}
        assert checks["wa_web_versions"]["state"] == "OK", checks["wa_web_versions"]


def test_pin_canary_promote_reject_and_unpin_move_exactly_their_accounts_at_the_roll_rate(cli, tmp_path,
                                                                                         fake_wa_web):
    fake = fake_wa_web
    url, db, fleet, phones = fleet_of(cli, tmp_path, fake, accounts=3, daemons=1)
    ids = sorted(phones)
    with fleet:
        daemon = next(iter(fleet.daemons.values()))
        # C ships (compatible); only the first account's page reloads onto it: C is recorded.
        fake.release(C)
        fake.reload(phones[ids[0]])
        wait_for(lambda: builds(db)[ids[0]] == ("connected", C), 60, message=lambda: f"{builds(db)}")
        wait_for(lambda: versions(cli, url).get(C, {}).get("document_stored"), 20, message="C recorded")
        assert {a: v for a, (_s, v) in builds(db).items()} == {ids[0]: C, ids[1]: A, ids[2]: A}

        def moves() -> list[tuple[float, int]]:
            out = []
            for line in daemon.log.read_text().splitlines():
                if "moving a session to another WhatsApp Web build" in line:
                    stamp = time.mktime(time.strptime(line[:20], "%Y-%m-%dT%H:%M:%SZ"))
                    out.append((stamp, int(re.search(r"account_id=(\d+)", line)[1])))
            return out

        def settle(want: dict[int, str], what: str) -> None:
            wait_for(lambda: {a: v for a, (st, v) in builds(db).items() if st == "connected"} == want, 90,
                     message=lambda: f"{what}: {builds(db)}\n{fleet.logs(30)}")

        # pin A: only the account on C moves.
        assert cli("webjs", "pin", A, db=url).code == 0
        settle({a: A for a in ids}, "pinned A")
        assert [a for _t, a in moves()] == [ids[0]]

        # canary C on one account: exactly one moves onto C.
        result = cli("webjs", "canary", C, "--accounts", "1", "--json", db=url)
        assert result.code == 0, result
        chosen = result.json()["canary_accounts"]
        assert len(chosen) == 1 and chosen[0] in ids
        settle({a: (C if a == chosen[0] else A) for a in ids}, "canary C")
        assert [a for _t, a in moves()][1:] == chosen

        # promote C: the two others move, one at a time, at the roll rate (30 a minute: 2 s apart).
        assert cli("webjs", "promote", C, db=url).code == 0
        settle({a: C for a in ids}, "promoted C")
        promoted = moves()[2:]
        assert sorted(a for _t, a in promoted) == sorted(set(ids) - set(chosen))
        assert promoted[1][0] - promoted[0][0] >= 1, f"moved together: {promoted}"

        # reject C: it was pinned, so the last good build before it (A) is pinned again.
        rejected = cli("webjs", "reject", C, "--reason", "media sends fail", db=url)
        assert rejected.code == 0 and f"{A} (the last good build) is pinned" in rejected.stdout, rejected
        settle({a: A for a in ids}, "rejected C")
        seen = versions(cli, url)
        assert (seen[C]["state"], seen[C]["reason"], seen[A]["state"]) == ("bad", "media sends fail", "pinned")

        # unpin: back to what WhatsApp serves now (B, compatible), one at a time.
        fake.release(B)
        assert cli("webjs", "unpin", db=url).stdout.startswith(f"unpinned WhatsApp Web {A}")
        settle({a: B for a in ids}, "unpinned: live B")
        assert sorted(a for _t, a in moves()[7:]) == ids

        # WhatsApp refuses A while it is pinned: the fleet unpins it, the accounts go live.
        assert cli("webjs", "pin", A, db=url).code == 0
        settle({a: A for a in ids}, "pinned A again")
        fake.release(A, deprecated=True, live=False)
        fake.reload()
        settle({a: B for a in ids}, "A deprecated: live B")
        seen = versions(cli, url)
        assert seen[A]["state"] == "deprecated" and seen[B]["state"] == "live", seen
        checks = {c["name"]: c for c in cli("health", "--json", db=url).json()["checks"]}
        assert checks["wa_web_versions"]["state"] == "WARNING" and A in checks["wa_web_versions"]["detail"]
        assert cli("webjs", "pin", A, db=url).code != 0  # refused: WhatsApp no longer accepts it

        # bad input writes nothing and says what to do
        for args, text in ((("pin", "9.9.9"), "never loaded"), (("canary", B), "either --accounts"),
                           (("canary", B, "--percent", "0"), "--percent")):
            result = cli("webjs", *args, db=url)
            assert result.code != 0 and text in result.stdout + result.stderr, result
        assert cli("webjs", "unpin", db=url).stdout.startswith("nothing was pinned")
    for phone in phones.values():
        assert len(devices_of(fake, phone)) == 1
