"""WhatsApp Web releases under the fleet's control: which build each session loads.

WhatsApp ships a new build every few days, and a renamed internal module breaks every driver at
once. Each session records the build it loaded (``Debug.VERSION``) and, the first time the fleet
meets a build, the app document it came from. A stored document can then be served to the page
instead of the live one (request interception), which makes the page load that build's own
scripts: that is a pin. Which build a session loads (``wanted``):

1. its account is a canary of a build in state ``canary``: that build;
2. else a build is ``pinned``: that build;
3. else the live one (whatever WhatsApp serves).

Builds in state ``bad`` or ``deprecated`` are never loaded on purpose. A failure of a live or
canary build (the module self-check, or too many failures in a window) marks it ``bad`` and
pins the last good build (``failure``): the daemons then move their sessions over, paced. When
WhatsApp refuses a pinned build (``DEPRECATED_VERSION``) it is unpinned (``deprecated``).
Operator changes (``pin``, ``unpin``, ``canary``, ``promote``, ``reject``) only write rows; the
daemons read the policy every few seconds and reload the sessions it moves, at
``providers.webjs.version_roll_rate``.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, WaVersionState
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import WaWebVersion, WaWebVersionFailure, WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow

V = WaWebVersion
S = WaVersionState
SELF_CHECK = "self_check"  # the page lacks modules the bridge needs: the build is bad at once
AUTO = "auto: "  # state reasons written by a daemon start with this
NEW_BUILD = 86400.0  # seconds a build counts as new: only a new build is judged by its failure count


@dataclass(frozen=True)
class Policy:
    """What the fleet loads: read by every daemon every few seconds."""

    pinned: str | None = None
    canary: dict[int, str] = field(default_factory=dict)  # account id -> build
    live: str | None = None  # the build WhatsApp served most recently
    unusable: frozenset[str] = frozenset()  # bad or deprecated

    def wanted(self, account_id: int) -> str | None:
        """The build this account's session should load; None: the live one."""
        return self.canary.get(account_id) or self.pinned


def compress(html: bytes) -> bytes:
    return zlib.compress(html, 9)


def policy(session: Session) -> Policy:
    """One query (every build: a fleet meets a few a week)."""
    rows = session.execute(select(V.id, V.version, V.state, V.canary_accounts, V.last_live_at)).all()
    seen_live = [r for r in rows if r.last_live_at is not None]
    live = max(seen_live, key=lambda r: (_aware(r.last_live_at), r.id)).version if seen_live else None
    pinned = next((r.version for r in rows if r.state == S.PINNED), None)
    canary = {int(a): r.version for r in rows if r.state == S.CANARY for a in (r.canary_accounts or [])}
    unusable = frozenset(r.version for r in rows if r.state in (S.BAD, S.DEPRECATED))
    return Policy(pinned=pinned, canary=canary, live=live, unusable=unusable)


def document(session: Session, version: str) -> bytes | None:
    """The stored app document of ``version`` (what a pinned page is served), or None."""
    html = session.scalar(select(V.html).where(V.version == version))
    return zlib.decompress(html) if html is not None else None


# --- what sessions report ---------------------------------------------------------------------

def seen(session: Session, *, version: str, html: bytes | None, live: bool) -> bool:
    """A session loaded ``version`` (``live``: as WhatsApp served it, with its document ``html``).
    True when the fleet met this build for the first time."""
    now = utcnow()
    row = session.scalar(select(V).where(V.version == version))
    if row is None:
        try:
            with session.begin_nested():
                session.add(V(version=version, first_seen_at=now, last_live_at=now if live else None,
                              html=compress(html) if html else None,
                              html_sha256=hashlib.sha256(html).hexdigest() if html else None))
            return True
        except IntegrityError:  # another daemon recorded it first
            row = session.scalar(select(V).where(V.version == version))
    if live:
        row.last_live_at = now
    if html and row.html is None:
        row.html, row.html_sha256 = compress(html), hashlib.sha256(html).hexdigest()
    return False


def connected(session: Session, *, version: str) -> None:
    """A session on ``version`` got connected: evidence that the build works."""
    session.execute(update(V).where(V.version == version).values(last_connected_at=db_now())
                    .execution_options(synchronize_session=False))


@dataclass(frozen=True)
class Verdict:
    bad: str | None = None  # the build this failure made bad
    pinned: str | None = None  # the build pinned instead (None: none was good, or one was pinned already)


def failure(session: Session, *, version: str, account_id: int | None, kind: str, detail: str | None,
            daemon: str, threshold: int, window: float, act: bool = True) -> Verdict:
    """Record a session failure on ``version``. With ``act`` (``providers.webjs.auto_pin``), a live
    or canary build that failed the self-check, or a new one (first met within a day) that failed
    ``threshold`` times within ``window`` seconds, becomes ``bad``, and the last good build is
    pinned unless one is pinned already. A pinned build is the operator's choice: its failures
    are counted, never acted on."""
    session.add(WaWebVersionFailure(version=version, account_id=account_id, kind=kind,
                                    detail=(detail or "")[:255] or None, daemon=daemon))
    session.flush()
    if not act:
        return Verdict()
    row = session.scalar(select(V).where(V.version == version).with_for_update())
    if row is None or row.state in (S.PINNED, S.BAD, S.DEPRECATED):
        return Verdict()
    since = utcnow() - timedelta(seconds=window)
    count = session.scalar(select(func.count()).select_from(WaWebVersionFailure).where(
        WaWebVersionFailure.version == version, WaWebVersionFailure.at >= since))
    new = _aware(row.first_seen_at) >= utcnow() - timedelta(seconds=NEW_BUILD)
    if kind != SELF_CHECK and (count < threshold or not new):
        return Verdict()  # pages stuck on a build that has served for days: not the build's fault
    reason = (f"{AUTO}self-check failed: {detail}" if kind == SELF_CHECK
              else f"{AUTO}{count} failures in {window:g} s (last: {kind}{': ' + detail if detail else ''})")
    _set_state(row, S.BAD, reason[:255], daemon)
    pinned = None
    if session.scalar(select(func.count()).select_from(V).where(V.state == S.PINNED)) == 0:
        pinned = _pin_last_good(session, but=version, reason=f"{AUTO}{version} is bad", by=daemon)
    announce(session, version=version, state="bad", reason=reason, pinned=pinned)
    return Verdict(bad=version, pinned=pinned)


def _pin_last_good(session: Session, *, but: str, reason: str, by: str) -> str | None:
    """Pin the build other than ``but`` that most recently got a session connected (and whose
    document is stored); None when there is none."""
    good = session.scalar(select(V).where(
        V.version != but, V.html.is_not(None), V.last_connected_at.is_not(None),
        or_(V.state.is_(None), V.state == S.CANARY)).order_by(V.last_connected_at.desc()).limit(1).with_for_update())
    if good is None:
        return None
    _set_state(good, S.PINNED, reason[:255], by)
    good.canary_accounts = None
    return good.version


def deprecated(session: Session, *, version: str, daemon: str) -> bool:
    """WhatsApp refused ``version`` (``DEPRECATED_VERSION``): never load it again. True when it was
    the pinned build, which leaves the fleet unpinned (on the live build)."""
    row = session.scalar(select(V).where(V.version == version).with_for_update())
    if row is None or row.state == S.DEPRECATED:
        return False
    was_pinned = row.state == S.PINNED
    reason = f"{AUTO}WhatsApp refused it (DEPRECATED_VERSION)" + ("; unpinned" if was_pinned else "")
    _set_state(row, S.DEPRECATED, reason, daemon)
    announce(session, version=version, state="deprecated", reason=reason, pinned=None)
    return was_pinned


def announce(session: Session, *, version: str, state: str, reason: str, pinned: str | None) -> None:
    """A ``webjs.version`` webhook event to every workspace that subscribes to it."""
    from blazzctl.services import events

    data = {"version": version, "state": state, "reason": reason, "pinned": pinned}
    for workspace_id in session.scalars(select(Workspace.id)):
        events.record(session, type="webjs.version", workspace_id=workspace_id, account_id=None, data=data)


def _set_state(row: WaWebVersion, state: WaVersionState | None, reason: str | None, by: str) -> None:
    row.state, row.state_reason, row.state_changed_at, row.state_by = state, reason, utcnow(), by[:150]


# --- what operators do --------------------------------------------------------------------------

def get(session: Session, version: str, *, lock: bool = False) -> WaWebVersion:
    query = select(V).where(V.version == version)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"WhatsApp Web {version} was never loaded by this fleet",
                       hint="`blazzctl webjs versions` lists the builds the fleet has met.")
    return row


def _usable(row: WaWebVersion, action: str) -> None:
    if row.html is None:
        raise InvalidInput(f"no app document is stored for WhatsApp Web {row.version}, so it cannot be {action}",
                           hint="Only builds a session loaded live can be served again.")
    if row.state == S.DEPRECATED:
        raise Conflict(f"WhatsApp refused {row.version} (deprecated): it cannot be {action}",
                       hint="Pick a newer build from `blazzctl webjs versions`.")


def pin(session: Session, *, version: str, by: str) -> WaWebVersion:
    """Every session loads ``version``: running ones are moved over gradually by their daemons."""
    row = get(session, version, lock=True)
    _usable(row, "pinned")
    _clear(session, S.PINNED, but=row.version)
    _set_state(row, S.PINNED, "pinned by an operator", by)
    row.canary_accounts = None
    _audit(session, "webjs pin", version)
    return row


def unpin(session: Session, *, by: str) -> WaWebVersion | None:
    """Back to the live build (gradually); None when nothing was pinned."""
    row = session.scalar(select(V).where(V.state == S.PINNED).with_for_update())
    if row is not None:
        _set_state(row, None, None, by)
        _audit(session, "webjs unpin", row.version)
    return row


def canary(session: Session, *, version: str, accounts: int | None, percent: float | None,
           by: str) -> WaWebVersion:
    """Run ``version`` on N connected accounts (or P % of them), chosen in turn from each daemon so
    a canary spans daemons and hosts; every other session stays on the pinned (or live) build."""
    if (accounts is None) == (percent is None):
        raise InvalidInput("give either --accounts N or --percent P")
    if accounts is not None and accounts < 1:
        raise InvalidInput(f"--accounts must be at least 1, not {accounts}")
    if percent is not None and not 0 < percent <= 100:
        raise InvalidInput(f"--percent must be more than 0 and at most 100, not {percent:g}")
    row = get(session, version, lock=True)
    _usable(row, "run as a canary")
    if row.state == S.PINNED:
        raise Conflict(f"{version} is pinned: every account runs it already", hint="`blazzctl webjs unpin` first.")
    owners = session.execute(select(WhatsAppAccount.id, WhatsAppAccount.owner).where(
        WhatsAppAccount.deleted_at.is_(None), WhatsAppAccount.status == AccountStatus.CONNECTED)
        .order_by(WhatsAppAccount.owner, WhatsAppAccount.id)).all()
    if not owners:
        raise Conflict("no account is connected: a canary needs running accounts")
    want = accounts if accounts is not None else max(1, math.ceil(len(owners) * percent / 100))
    chosen = _spread(owners, min(want, len(owners)))
    _clear(session, S.CANARY, but=row.version)
    _set_state(row, S.CANARY, f"canary on {len(chosen)} accounts", by)
    row.canary_accounts = chosen
    _audit(session, "webjs canary", version, {"accounts": chosen})
    return row


def promote(session: Session, *, version: str, by: str) -> WaWebVersion:
    """Pin ``version`` for every account (the canary's build, or any other stored one)."""
    row = pin(session, version=version, by=by)
    _audit(session, "webjs promote", version)
    return row


def reject(session: Session, *, version: str, by: str, reason: str | None = None) -> str | None:
    """Mark ``version`` bad: its canary accounts move back to the pinned (or live) build; when it
    was the pinned build, the last good build before it is pinned instead. Returns that build."""
    row = get(session, version, lock=True)
    was_pinned = row.state == S.PINNED
    _set_state(row, S.BAD, (reason or "rejected by an operator")[:255], by)
    row.canary_accounts = None
    pinned = _pin_last_good(session, but=version, reason=f"{version} was rejected", by=by) if was_pinned else None
    _audit(session, "webjs reject", version, {"pinned": pinned} if pinned else None)
    return pinned


def _clear(session: Session, state: WaVersionState, *, but: str) -> None:
    session.execute(update(V).where(V.state == state, V.version != but)
                    .values(state=None, state_reason=None, state_changed_at=utcnow(), canary_accounts=None)
                    .execution_options(synchronize_session=False))


def _spread(rows, n: int) -> list[int]:
    """``n`` account ids taken in turn from each owner (``rows`` sorted by owner, id)."""
    by_owner: dict[str | None, list[int]] = {}
    for account_id, owner in rows:
        by_owner.setdefault(owner, []).append(account_id)
    queues, chosen = list(by_owner.values()), []
    while len(chosen) < n:
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def _audit(session: Session, command: str, version: str, details: dict | None = None) -> None:
    from blazzctl.services import audit

    audit.record(session, command=command, target_type="wa_web_version", target=version, details=details)


# --- what operators see -------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionView:
    version: str
    state: str  # pinned | canary | bad | deprecated | live | old
    reason: str | None
    accounts: int  # connected accounts whose page runs it
    failures_hour: int
    failures_day: int
    first_seen_at: datetime
    last_live_at: datetime | None
    stored: bool  # its app document is stored (it can be pinned)
    canary_accounts: list[int] | None

    def as_json(self) -> dict:
        return {"version": self.version, "state": self.state, "reason": self.reason, "accounts": self.accounts,
                "failures_last_hour": self.failures_hour, "failures_last_day": self.failures_day,
                "first_seen_at": _iso(self.first_seen_at), "last_live_at": _iso(self.last_live_at),
                "document_stored": self.stored, "canary_accounts": self.canary_accounts}


def list_versions(session: Session) -> list[VersionView]:
    from blazzctl.services import overview

    now = utcnow()
    rows = session.execute(select(V.version, V.state, V.state_reason, V.first_seen_at, V.last_live_at,
                                  V.html_sha256, V.canary_accounts).order_by(V.first_seen_at.desc(), V.id.desc())).all()
    on = overview.accounts_by_wa_version(session)
    failures: dict[str, list[int]] = {}
    for version, at in session.execute(select(WaWebVersionFailure.version, WaWebVersionFailure.at).where(
            WaWebVersionFailure.at >= now - timedelta(days=1))):
        counts = failures.setdefault(version, [0, 0])
        counts[1] += 1
        counts[0] += _aware(at) >= now - timedelta(hours=1)
    live = max((r for r in rows if r.last_live_at is not None), key=lambda r: _aware(r.last_live_at), default=None)
    out = []
    for r in rows:
        state = r.state.value if r.state is not None else ("live" if live is not None and r.version == live.version
                                                          else "old")
        hour, day = failures.get(r.version, (0, 0))
        out.append(VersionView(r.version, state, r.state_reason, on.get(r.version, 0), hour, day, r.first_seen_at,
                               r.last_live_at, r.html_sha256 is not None, r.canary_accounts))
    return out


def health(session: Session) -> tuple[str, str]:
    """(state, message) for ``blazzctl health``: CRITICAL while the build WhatsApp serves is one the
    fleet marked bad by itself, WARNING for a day after a pinned build was refused, else OK."""
    newest_live = session.scalar(select(V).where(V.last_live_at.is_not(None))
                                 .order_by(V.last_live_at.desc(), V.id.desc()).limit(1))
    pinned = session.scalar(select(V.version).where(V.state == S.PINNED))
    if newest_live is not None and newest_live.state == S.BAD and (newest_live.state_reason or "").startswith(AUTO):
        where = f"the fleet is pinned to {pinned}" if pinned else "no good build was stored to pin"
        return "critical", (f"WhatsApp Web {newest_live.version} is bad ({newest_live.state_reason[len(AUTO):]}); "
                            f"{where}; `blazzctl webjs versions`")
    recent = session.scalar(select(V).where(V.state == S.DEPRECATED, V.state_changed_at >= utcnow() - timedelta(days=1))
                            .order_by(V.state_changed_at.desc()).limit(1))
    if recent is not None:
        return "warning", f"WhatsApp refused {recent.version} (deprecated) {recent.state_reason or ''}".strip()
    if pinned:
        return "ok", f"pinned to {pinned}"
    return "ok", f"live {newest_live.version}" if newest_live is not None else "no build recorded yet"


def _aware(value: datetime) -> datetime:
    from datetime import timezone

    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat() if value is not None else None
