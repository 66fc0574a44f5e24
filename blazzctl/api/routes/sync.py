"""/v1/sync-runs: ask the owning daemons to read chats, contacts and groups (what `blazzctl sync` does)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request

from blazzctl.api import waiting
from blazzctl.api.auth import Principal, scope
from blazzctl.api.schemas import SyncCreate
from blazzctl.api.work import account, read, reading, unit, workspace
from blazzctl.errors import NotFound

router = APIRouter(prefix="/v1/sync-runs", tags=["sync"])
RUN = Depends(scope("sync:run"))


@router.post("", status_code=202, summary="Queue a sync per account (an account's active run is returned "
                                           "instead of a second one: created false)")
def create(request: Request, body: SyncCreate | None = Body(None), principal: Principal = RUN) -> list[dict]:
    from blazzctl import views_sync
    from blazzctl.services import sync

    body = body or SyncCreate()
    with unit(request, principal) as session:
        if body.accounts:
            targets = sync.targets(session, accounts=[account(session, principal, r) for r in body.accounts])
        else:
            targets = sync.targets(session, workspace=workspace(session, principal))
        requested = sync.request(session, accounts=targets, kind=sync.parse_kind(body.kind),
                                 requested_by=f"api:{principal.name}")
        return [{**views_sync.sync_run(r.run, r.account), "created": r.created} for r in requested]


@router.get("", summary="Sync runs of the workspace, newest first")
async def list_runs(request: Request, account_ref: str | None = Query(None, alias="account"), status: str | None = None,
                    limit: int = Query(50, ge=1, le=1000), principal: Principal = RUN) -> list[dict]:
    def load():
        from blazzctl import views_sync
        from blazzctl.services import sync

        with reading(request) as session:
            acc = account(session, principal, account_ref) if account_ref else None
            ws = workspace(session, principal) if acc is None else None
            return [views_sync.sync_run(r, a) for r, a in sync.list_runs(session, account=acc, workspace=ws,
                                                                         status=status, limit=limit)]

    return await read(request, load)


@router.get("/{run_id}", summary="One sync run; ?wait=S long-polls until it changes")
async def get(request: Request, run_id: int, wait: float | None = waiting.WaitQuery, principal: Principal = RUN):
    from blazzctl import views_sync
    from blazzctl.models import SyncRun, WhatsAppAccount

    def load() -> dict:
        with reading(request) as session:
            run = session.get(SyncRun, run_id, populate_existing=True)
            acc = session.get(WhatsAppAccount, run.whatsapp_account_id) if run is not None else None
            if acc is None or acc.workspace_id != principal.workspace_id:
                raise NotFound(f"sync run {run_id} not found")
            return views_sync.sync_run(run, acc)

    return await waiting.respond(request, load, wait)
