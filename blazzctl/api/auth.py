"""Who is calling: ``Authorization: Bearer blz_…``, the key's scopes, and its rate limit.

Keys are looked up by the SHA-256 of the token (one indexed row) and cached per worker for
``CACHE_SECONDS``, so a revocation reaches every worker within that time. ``last_used_at`` is
written when a lookup finds it older than ``TOUCH_SECONDS`` (a write per request would cost
more than most requests). The rate limit is a fixed window of one minute per key, counted by
each worker on its own (docs/api.md): no shared state, no write per request. The key's
workspace (id and name) is cached with it: reads that only filter by the workspace need no query
for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from blazzctl.api.errors import ApiError

CACHE_SECONDS = 5.0
TOUCH_SECONDS = 60.0
MISSING = object()  # not in the cache (or too old)


@dataclass(frozen=True)
class Principal:
    """An authenticated API key: what it may do, and in which workspace."""

    key_id: int
    name: str
    prefix: str
    workspace_id: int
    scopes: frozenset[str]
    workspace_name: str = ""

    @property
    def workspace_ref(self) -> str:
        return str(self.workspace_id)


class Keys:
    """The per-worker key cache and rate-limit counters."""

    def __init__(self, db, *, rate_limit_per_minute: int) -> None:
        self.db, self.limit = db, rate_limit_per_minute
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._windows: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._lookups: dict[str, asyncio.Future] = {}  # digest -> the lookup in flight

    async def resolve(self, token: str) -> Principal | None:
        """The token's principal (None: no such live key), from the cache when fresh.

        An expired entry is looked up again once, whatever the number of requests waiting for it,
        and they get the last answer meanwhile: when every request of a busy worker waited for
        its own lookup (a database transaction in the one request thread) each time the entry
        expired, a few hundred requests queued for seconds every CACHE_SECONDS.
        """
        from blazzctl.services import apikeys

        known = self.cached(token)
        if known is not MISSING:
            return known
        digest = apikeys.token_hash(token)
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(run_in_threadpool(self.authenticate, token))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda done: (self._lookups.pop(digest, None),
                                                   done.cancelled() or done.exception()))  # seen: no warning
        last = self._cache.get(digest)
        if last is not None and not lookup.done():
            return last[1]
        return await asyncio.shield(lookup)

    def cached(self, token: str) -> Principal | None | object:
        """The key's principal (or None: no such key) when looked up within ``CACHE_SECONDS``;
        else ``MISSING``. No database access."""
        from blazzctl.services import apikeys

        cached = self._cache.get(apikeys.token_hash(token))
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        return MISSING

    def authenticate(self, token: str) -> Principal | None:
        from blazzctl.services import apikeys

        known = self.cached(token)
        if known is not MISSING:
            return known
        digest, now = apikeys.token_hash(token), time.monotonic()
        principal = self._load(token)
        with self._lock:
            if len(self._cache) > 10_000:  # bad tokens must not grow the cache without bound
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def _load(self, token: str) -> Principal | None:
        from blazzctl.models import Workspace
        from blazzctl.models.base import utcnow
        from blazzctl.services import apikeys

        with self.db.session() as session:
            key = apikeys.find(session, token)
            if key is None:
                return None
            workspace = session.get(Workspace, key.workspace_id)
            if workspace is None or workspace.deleted_at is not None:  # removal revokes keys: belt and braces
                return None
            if key.last_used_at is None or key.last_used_at < utcnow() - timedelta(seconds=TOUCH_SECONDS):
                apikeys.touch(session, key_id=key.id)
            return Principal(key.id, key.name, key.prefix, key.workspace_id, frozenset(key.scopes or ()),
                             workspace.name)

    def count(self, principal: Principal) -> None:
        """One more request of this key in this minute; 429 past the limit."""
        if not self.limit:
            return
        now = time.time()
        window = int(now // 60)
        with self._lock:
            slot = self._windows.setdefault(principal.key_id, [window, 0])
            if slot[0] != window:
                slot[0], slot[1] = window, 0
            slot[1] += 1
            over = slot[1] > self.limit
        if over:
            retry = max(1, int((window + 1) * 60 - now + 0.999))
            raise ApiError(429, f"API key {principal.prefix}… made more than {self.limit} requests this minute "
                                f"(api.rate_limit_per_minute)", headers={"Retry-After": str(retry)})


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "no API key: send `Authorization: Bearer blz_…` (create one with "
                            "`blazzctl apikey create`)", headers={"WWW-Authenticate": 'Bearer realm="blazz"'})
    return token.strip()


def scope(needed: str):
    """A dependency: the caller's key, which must carry ``needed``.

    It is a coroutine: FastAPI runs a plain function dependency in a worker thread, and that
    thread hop cost more than the check itself, which is a dictionary lookup but every
    ``CACHE_SECONDS``; only a lookup that must read the database goes to a thread (``Keys.resolve``).
    """

    async def check(request: Request) -> Principal:
        keys: Keys = request.app.state.keys
        token = bearer_token(request)
        principal = await keys.resolve(token)
        if principal is None:
            raise ApiError(401, "the API key is unknown, revoked or expired",
                           headers={"WWW-Authenticate": 'Bearer realm="blazz", error="invalid_token"'})
        keys.count(principal)
        if needed not in principal.scopes:
            raise ApiError(403, f"the API key lacks the scope {needed!r}", scope=needed)
        request.state.principal = principal
        return principal

    check.__name__ = f"scope_{needed.replace(':', '_')}"
    return check
