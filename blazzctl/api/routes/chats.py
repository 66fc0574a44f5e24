"""/v1/accounts/{ref}/chats|contacts|groups: what sync and incoming messages stored (read only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from blazzctl.api.responses import JSONResponse

from blazzctl.api import pages
from blazzctl.api.auth import Principal, scope
from blazzctl.api.work import account, read, reading

router = APIRouter(prefix="/v1/accounts/{ref}", tags=["chats"])
READ = Depends(scope("messages:read"))


@router.get("/chats", summary="An account's chats, newest message first (keyset pages)")
async def list_chats(request: Request, ref: str, type: str | None = Query(None, description="private or group"),
                     unread: bool = False, limit: int = Query(50, ge=1, le=1000),
                     before: int | None = Query(None, description="The id of the last chat of the previous page."),
                     principal: Principal = READ) -> JSONResponse:
    def load():
        from blazzctl import views_sync
        from blazzctl.services import chats

        with reading(request) as session:
            acc = account(session, principal, ref)
            rows = [views_sync.chat(c) for c in chats.list_chats(session, account_id=acc.id, chat_type=type,
                                                                 unread=unread, limit=limit + 1, before=before)]
        return pages.page(request, rows, limit, "before")

    return await read(request, load)


@router.get("/contacts", summary="An account's contacts (keyset pages)")
async def list_contacts(request: Request, ref: str, limit: int = Query(100, ge=1, le=1000),
                        after: int | None = Query(None, description="The id of the last contact of the previous page."),
                        principal: Principal = READ) -> JSONResponse:
    def load():
        from blazzctl import views_sync
        from blazzctl.services import chats

        with reading(request) as session:
            acc = account(session, principal, ref)
            rows = [views_sync.contact(c) for c in chats.list_contacts(session, account_id=acc.id, limit=limit + 1,
                                                                       after=after)]
        return pages.page(request, rows, limit, "after")

    return await read(request, load)


@router.get("/groups/{jid}", summary="A group of the account with its participants")
async def get_group(request: Request, ref: str, jid: str, principal: Principal = READ) -> dict:
    def load():
        from blazzctl import views_sync
        from blazzctl.services import chats

        with reading(request) as session:
            acc = account(session, principal, ref)
            return views_sync.group(*chats.get_group(session, account_id=acc.id, jid=jid))

    return await read(request, load)
