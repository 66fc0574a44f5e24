"""Keyset pages: the body is the page (the CLI's ``--json`` list); the next page is a ``Link`` header."""

from __future__ import annotations

from fastapi import Request
from blazzctl.api.responses import JSONResponse


def page(request: Request, rows: list[dict], limit: int, cursor: str, key: str = "id") -> JSONResponse:
    """``rows`` fetched with ``limit + 1``: answers the first ``limit``, and when more follow a
    ``Link: <…?cursor=LAST>; rel="next"`` (the other query parameters kept)."""
    shown, more = rows[:limit], len(rows) > limit
    headers = {}
    if more:
        url = request.url.include_query_params(**{cursor: shown[-1][key]})
        headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return JSONResponse(shown, headers=headers)
