"""/v1/accounts: what `blazzctl account` does, for the caller's workspace."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from blazzctl.api import pages, waiting
from blazzctl.api.auth import Principal, scope
from blazzctl.api.errors import ApiError
from blazzctl.api.responses import JSONResponse
from blazzctl.api.schemas import AccountCreate, AccountUpdate, Connect
from blazzctl.api.work import account, read, reading, unit, workspace, workspace_seen

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
READ, WRITE = Depends(scope("accounts:read")), Depends(scope("accounts:write"))


@router.get("", summary="List accounts (keyset pages; the next page is in the Link header)")
async def list_accounts(request: Request, status: str | None = None, limit: int = Query(100, ge=1, le=1000),
                        after: int | None = Query(None, description="The last id of the previous page."),
                        principal: Principal = READ) -> JSONResponse:
    def load():
        from blazzctl.services import accounts

        with reading(request) as session:
            rows = accounts.account_views(session, workspace=workspace_seen(principal), status=status,
                                          limit=limit + 1, after=after)
        return pages.page(request, rows, limit, "after")

    return await read(request, load)


@router.post("", status_code=201, summary="Add an account (disconnected, not primary)")
def create(request: Request, body: AccountCreate, principal: Principal = WRITE) -> dict:
    from blazzctl import views
    from blazzctl.services import accounts

    with unit(request, principal) as session:
        return views.account(accounts.add(session, workspace=workspace(session, principal), name=body.name,
                                          phone=body.phone, provider=body.provider))


@router.get("/{ref}", summary="One account; ?wait=S long-polls until it changes")
async def get(request: Request, ref: str, wait: float | None = waiting.WaitQuery,
              principal: Principal = READ) -> JSONResponse:
    from blazzctl import views

    def load() -> dict:
        with reading(request) as session:
            return views.account(account(session, principal, ref))

    return await waiting.respond(request, load, wait)


@router.patch("/{ref}", summary="Rename an account or change its phone number")
def update(request: Request, ref: str, body: AccountUpdate, principal: Principal = WRITE) -> dict:
    from blazzctl import views
    from blazzctl.services import accounts

    with unit(request, principal) as session:
        return views.account(accounts.update_account(session, account=account(session, principal, ref),
                                                     name=body.name, phone=body.phone))


@router.delete("/{ref}", summary="Remove an account (soft delete); ?force=true removes a connected one")
def delete(request: Request, ref: str, force: bool = False, principal: Principal = WRITE) -> dict:
    from blazzctl import views
    from blazzctl.services import accounts

    with unit(request, principal) as session:
        return views.account(accounts.remove(session, account=account(session, principal, ref), force=force))


@router.post("/{ref}/primary", summary="Make the account its workspace's primary account")
def primary(request: Request, ref: str, principal: Principal = WRITE) -> dict:
    from blazzctl import views
    from blazzctl.services import accounts

    with unit(request, principal) as session:
        return views.account(accounts.make_primary(session, account=account(session, principal, ref)))


def _request(request: Request, principal: Principal, ref: str, kind: str, pair_phone: str | None = None) -> dict:
    """Record the command and answer at once (202): follow it with GET /v1/accounts/{ref}?wait=30."""
    from blazzctl import views
    from blazzctl.enums import CommandKind
    from blazzctl.services import commands

    settings = request.app.state.settings
    with unit(request, principal) as session:
        acc = account(session, principal, ref)
        command = commands.request(session, account=acc, kind=CommandKind(kind), pair_phone=pair_phone,
                                   state_dir=settings.daemon.state_dir)
        session.refresh(acc)
        return {**views.account(acc), "command": {"id": command.id, "kind": kind, "status": str(command.status),
                                                  "result": command.result}}


@router.post("/{ref}/connect", status_code=202, summary="Bring the account online (a session daemon logs in)")
def connect(request: Request, ref: str, body: Connect | None = Body(None), principal: Principal = WRITE) -> dict:
    return _request(request, principal, ref, "connect", body.pair_phone if body else None)


@router.post("/{ref}/disconnect", status_code=202, summary="Close the session, keep the login")
def disconnect(request: Request, ref: str, principal: Principal = WRITE) -> dict:
    return _request(request, principal, ref, "disconnect")


@router.post("/{ref}/reconnect", status_code=202, summary="Restart the session, keeping the login")
def reconnect(request: Request, ref: str, principal: Principal = WRITE) -> dict:
    return _request(request, principal, ref, "reconnect")


@router.post("/{ref}/logout", status_code=202, summary="Unlink the account from its phone")
def logout(request: Request, ref: str, principal: Principal = WRITE) -> dict:
    return _request(request, principal, ref, "logout")


@router.get("/{ref}/qr", summary="The current login QR: JSON, or a PNG with Accept: image/png",
            responses={200: {"content": {"application/json": {}, "image/png": {}}}})
async def qr(request: Request, ref: str, principal: Principal = READ) -> Response:
    def load():
        from blazzctl import views
        from blazzctl.errors import OperationFailed

        with reading(request) as session:
            acc = account(session, principal, ref)
            code, expires, pairing = acc.qr_code, acc.qr_expires_at, acc.pairing_code
            status, name = acc.status, acc.name
        accept = request.headers.get("accept", "")
        png = "image/png" in accept and "application/json" not in accept
        if png and not code or not (code or pairing):
            raise OperationFailed(f"account {name!r} has no {'QR code' if png else 'QR or pairing code'} now "
                                  f"(status {status})", hint="Start a login with POST /v1/accounts/{ref}/connect.")
        if png:
            return Response(_png(code), media_type="image/png")
        if accept and not any(t in accept for t in ("application/json", "*/*", "application/*")):
            raise ApiError(406, "the QR is served as application/json or image/png")
        return JSONResponse({"qr": code, "expires_at": views.iso(expires), "pairing_code": pairing})

    return await read(request, load)


def _png(code: str) -> bytes:
    import io

    import segno

    out = io.BytesIO()
    segno.make(code, error="l", micro=False).save(out, kind="png", scale=8, border=4)
    return out.getvalue()
