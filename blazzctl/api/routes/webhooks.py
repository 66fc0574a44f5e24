"""/v1/webhooks: the workspace's webhook endpoints and their deliveries (what `blazzctl webhook` does)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request

from blazzctl.api.auth import Principal, scope
from blazzctl.api.schemas import WebhookCreate, WebhookUpdate
from blazzctl.api.work import read, reading, unit, workspace
from blazzctl.errors import NotFound

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
MANAGE = Depends(scope("webhooks:manage"))


def _endpoint(session, principal: Principal, endpoint_id: int):
    """An endpoint of the caller's workspace (another workspace's is NotFound, as if absent)."""
    from blazzctl.services import webhooks

    endpoint = webhooks.get(session, endpoint_id)
    if endpoint.workspace_id != principal.workspace_id:
        raise NotFound(f"webhook {str(endpoint_id)!r} not found")
    return endpoint


def _events(events):
    from blazzctl.services import webhooks

    if events is None or events == webhooks.ALL_EVENTS:
        return events
    return webhooks.parse_events(",".join(events))


@router.post("", status_code=201, summary="Add a webhook; its signing secret is in this answer only")
def create(request: Request, body: WebhookCreate, principal: Principal = MANAGE) -> dict:
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    with unit(request, principal) as session:
        endpoint = webhooks.add(session, workspace=workspace(session, principal), url=body.url,
                                events=_events(body.events), secret=body.secret)
        return views.endpoint(endpoint, with_secret=True)


@router.get("", summary="The workspace's webhooks")
async def list_endpoints(request: Request, principal: Principal = MANAGE) -> list[dict]:
    def load():
        from blazzctl.services import webhooks
        from blazzctl.webhooks import views

        with reading(request) as session:
            endpoints = webhooks.list_endpoints(session, workspace=workspace(session, principal))
            return [views.endpoint(e) for e in endpoints]

    return await read(request, load)


@router.get("/{endpoint_id}", summary="One webhook")
async def get(request: Request, endpoint_id: int, principal: Principal = MANAGE) -> dict:
    def load():
        from blazzctl.webhooks import views

        with reading(request) as session:
            return views.endpoint(_endpoint(session, principal, endpoint_id))

    return await read(request, load)


@router.patch("/{endpoint_id}", summary='Change the URL, the event types ("all" for every type) or active')
def update(request: Request, endpoint_id: int, body: WebhookUpdate, principal: Principal = MANAGE) -> dict:
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    with unit(request, principal) as session:
        return views.endpoint(webhooks.update(session, endpoint=_endpoint(session, principal, endpoint_id),
                                              url=body.url, events=_events(body.events), active=body.active))


@router.delete("/{endpoint_id}", summary="Remove a webhook and its delivery history")
def delete(request: Request, endpoint_id: int, principal: Principal = MANAGE) -> dict:
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    with unit(request, principal) as session:
        endpoint = _endpoint(session, principal, endpoint_id)
        view = views.endpoint(endpoint)
        webhooks.remove(session, endpoint=endpoint)
        return view


@router.post("/{endpoint_id}/rotate-secret", summary="A new signing secret (in this answer only); the old one "
                                                      "keeps signing for grace seconds")
def rotate_secret(request: Request, endpoint_id: int,
                  grace: float | None = Body(None, embed=True, ge=0, le=30 * 86400),
                  principal: Principal = MANAGE) -> dict:
    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    settings = request.app.state.settings
    with unit(request, principal) as session:
        endpoint = webhooks.rotate_secret(session, endpoint=_endpoint(session, principal, endpoint_id),
                                          grace=settings.webhooks.rotation_grace if grace is None else grace)
        return views.endpoint(endpoint, with_secret=True)


@router.post("/{endpoint_id}/test", summary="Send a webhook.test event now; status says whether it was delivered")
async def test(request: Request, endpoint_id: int, principal: Principal = MANAGE) -> dict:
    import anyio.to_thread

    from blazzctl.services import webhooks
    from blazzctl.webhooks import views

    def check() -> None:
        with reading(request) as session:
            _endpoint(session, principal, endpoint_id)

    await anyio.to_thread.run_sync(check)
    # The delivery waits for the endpoint (up to webhooks.timeout): on threads of its own, so the
    # worker's request threads (api.threads) go on serving meanwhile.
    delivery, outcome = await anyio.to_thread.run_sync(
        lambda: webhooks.test(request.app.state.db, request.app.state.settings, endpoint_ref=str(endpoint_id)),
        limiter=request.app.state.slow_calls)
    return {**views.delivery(delivery), "duration_ms": outcome.duration_ms, "response": outcome.response}


@router.get("/{endpoint_id}/deliveries", summary="The webhook's deliveries, newest first")
async def deliveries(request: Request, endpoint_id: int, status: str | None = None,
                     limit: int = Query(50, ge=1, le=10000), principal: Principal = MANAGE) -> list[dict]:
    def load():
        from blazzctl.services import webhooks
        from blazzctl.webhooks import views

        with reading(request) as session:
            _endpoint(session, principal, endpoint_id)
            return [views.delivery(d) for d in webhooks.list_deliveries(session, status=status,
                                                                        endpoint_id=endpoint_id, limit=limit)]

    return await read(request, load)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver",
             summary="Queue one delivery again from a first attempt (re-enables a disabled webhook)")
def redeliver(request: Request, endpoint_id: int, delivery_id: int, principal: Principal = MANAGE) -> dict:
    from blazzctl.models import WebhookDelivery
    from blazzctl.services import webhooks

    with unit(request, principal) as session:
        _endpoint(session, principal, endpoint_id)
        found = session.get(WebhookDelivery, delivery_id)
        if found is None or found.endpoint_id != endpoint_id:
            raise NotFound(f"delivery {delivery_id} not found")
        ids = webhooks.redeliver(session, delivery_id=delivery_id)
    return {"redelivered": len(ids), "ids": ids}


@router.post("/{endpoint_id}/redeliver-dead", summary="Queue every dead delivery of the webhook again")
def redeliver_dead(request: Request, endpoint_id: int, principal: Principal = MANAGE) -> dict:
    from blazzctl.services import webhooks

    with unit(request, principal) as session:
        _endpoint(session, principal, endpoint_id)
        ids = webhooks.redeliver(session, dead=True, endpoint_id=endpoint_id)
    return {"redelivered": len(ids), "ids": ids}
