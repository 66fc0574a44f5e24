"""Long polls: ``GET …?wait=SECONDS`` answers when the object changes, or when the time is up.

The object's state is its JSON view; its ETag is a hash of that view. A client passes the ETag
it holds in ``If-None-Match`` (else the state at the request's start is the baseline), so a
change that happened between two requests is never missed. The wait holds no thread and no
database connection: it sleeps on the event loop and reads the row every ``POLL`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable

from fastapi import Query, Request
from blazzctl.api.responses import JSONResponse

MAX_WAIT = 30.0
POLL = 0.5

WaitQuery = Query(None, ge=0, le=MAX_WAIT, description="Long poll: answer when the object changes (compared "
                                                      "with If-None-Match, else with its state now), at most "
                                                      "this many seconds.")


def etag(view: dict) -> str:
    return '"' + hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()[:32] + '"'


async def respond(request: Request, load: Callable[[], dict], wait: float | None) -> JSONResponse:
    """The view ``load()`` returns (``work.read``), after waiting for a change when asked."""
    from blazzctl.api.work import read

    view = await read(request, load)
    tag = etag(view)
    if wait:
        baseline = request.headers.get("if-none-match") or tag
        deadline = time.monotonic() + wait
        while tag == baseline and time.monotonic() < deadline:
            await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
            if await request.is_disconnected():
                break
            view = await read(request, load)
            tag = etag(view)
    return JSONResponse(view, headers={"ETag": tag})
