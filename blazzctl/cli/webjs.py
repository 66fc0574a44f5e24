"""`blazzctl webjs`: which WhatsApp Web build the fleet runs (pin, canary, promote, reject)."""

from __future__ import annotations

from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="WhatsApp Web releases: the builds the fleet met, pins and canaries.")

VersionArg = typer.Argument(..., metavar="VERSION", help="A build as `webjs versions` lists it, e.g. 2.3000.1017054665.")
ROLL = ("Running sessions move over one at a time, at providers.webjs.version_roll_rate per daemon; "
        "each keeps its login.")


def _who() -> str:
    from blazzctl.services import audit

    return audit.os_user()


def _done(row, json: bool, text: str) -> None:
    if json:
        from blazzctl.services import wa_versions

        with state(None).db.session() as session:
            view = next(v for v in wa_versions.list_versions(session) if v.version == row)
        output.emit_json(view.as_json())
        return
    output.say(text)


@app.command("versions")
def versions(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Every WhatsApp Web build the fleet has loaded: its state (live, pinned, canary, bad,
    deprecated, old), the connected accounts on it, and the failures attributed to it.

    Example: blazzctl webjs versions
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        rows = wa_versions.list_versions(session)
    if json:
        output.emit_json([r.as_json() for r in rows])
        return
    output.table(["VERSION", "STATE", "ACCOUNTS", "FAILURES 1H", "FAILURES 24H", "FIRST SEEN", "STORED", "REASON"],
                 ([r.version, r.state, r.accounts, r.failures_hour, r.failures_day, r.as_json()["first_seen_at"],
                   "yes" if r.stored else "no", r.reason or ""] for r in rows),
                 empty="no WhatsApp Web build recorded yet: sessions record the build they load")


@app.command("pin")
def pin(version: str = VersionArg, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Make every session load VERSION: its stored app document is served to the page, which
    then loads that build's own scripts.

    Example: blazzctl webjs pin 2.3000.1017054665
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        wa_versions.pin(session, version=version, by=_who())
    _done(version, json, f"pinned WhatsApp Web {version}. {ROLL}")


@app.command("unpin")
def unpin(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Return every session to the live build (what WhatsApp serves), gradually.

    Example: blazzctl webjs unpin
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        row = wa_versions.unpin(session, by=_who())
        version = row.version if row is not None else None
    if json:
        output.emit_json({"unpinned": version})
        return
    output.say(f"unpinned WhatsApp Web {version}: sessions return to the live build. {ROLL}" if version
               else "nothing was pinned: sessions load the live build")


@app.command("canary")
def canary(version: str = VersionArg,
           accounts: Optional[int] = typer.Option(None, "--accounts", metavar="N", help="Run it on N accounts."),
           percent: Optional[float] = typer.Option(None, "--percent", metavar="P", help="Run it on P % of the accounts."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Run VERSION on a few connected accounts, taken in turn from each daemon (so across hosts),
    while every other account stays on the pinned (or live) build.

    Example: blazzctl webjs canary 2.3000.1017100000 --accounts 5
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        row = wa_versions.canary(session, version=version, accounts=accounts, percent=percent, by=_who())
        chosen = list(row.canary_accounts or [])
    _done(version, json, f"WhatsApp Web {version} is the canary of {len(chosen)} accounts: "
                         f"{', '.join(map(str, chosen))}. {ROLL}")


@app.command("promote")
def promote(version: str = VersionArg, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Pin VERSION for every account (after a good canary).

    Example: blazzctl webjs promote 2.3000.1017100000
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        wa_versions.promote(session, version=version, by=_who())
    _done(version, json, f"promoted WhatsApp Web {version}: pinned for every account. {ROLL}")


@app.command("reject")
def reject(version: str = VersionArg,
           reason: Optional[str] = typer.Option(None, "--reason", help="Why (shown by `webjs versions`)."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Mark VERSION bad: its canary accounts (every account, if it was pinned) move back to the
    pinned or live build, and no session loads it on purpose again.

    Example: blazzctl webjs reject 2.3000.1017100000 --reason "media sends fail"
    """
    from blazzctl.services import wa_versions

    with state(config).db.session() as session:
        pinned = wa_versions.reject(session, version=version, by=_who(), reason=reason)
    _done(version, json, f"rejected WhatsApp Web {version}: marked bad"
                         + (f"; {pinned} (the last good build) is pinned instead" if pinned else "") + f". {ROLL}")
