"""/v1/…/messages: send (JSON or multipart), read, list, cancel, resend: what `blazzctl message` does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Header, Query, Request
from blazzctl.api.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from blazzctl.api import pages, waiting
from blazzctl.api.auth import Principal, scope
from blazzctl.api.errors import ApiError
from blazzctl.api.schemas import MessageSend
from blazzctl.api.work import account, read, reading, unit
from blazzctl.errors import InvalidInput, NotFound

router = APIRouter(tags=["messages"])
READ, SEND = Depends(scope("messages:read")), Depends(scope("messages:send"))

SEND_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/MessageSend"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["to"], "properties": {
        "to": {"type": "string"}, "text": {"type": "string"}, "caption": {"type": "string"},
        "reply_to": {"type": "string"}, "file": {"type": "string", "format": "binary"}}}}}}}


@router.post("/v1/accounts/{ref}/messages", status_code=202, openapi_extra=SEND_BODY,
             summary="Queue a message (202); the same Idempotency-Key again returns the same message (200)")
async def send(request: Request, ref: str, principal: Principal = SEND,
               idempotency_key: str | None = Header(None, description="The CLI's --idempotency-key.")):
    body, media = await _read_send(request)
    view, created = await run_in_threadpool(_send, request, principal, ref, body, media, idempotency_key)
    return JSONResponse(view, status_code=202 if created else 200,
                        headers={} if created else {"Idempotent-Replayed": "true"})


async def _read_send(request: Request) -> tuple[MessageSend, tuple[str, bytes] | None]:
    """The body as JSON (media in base64) or multipart/form-data (media as the part ``file``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        media = (upload.filename or "file", await upload.read()) if upload is not None and hasattr(upload, "read") \
            else None
        body = _parse(fields)
        return body, media
    if kind not in ("application/json", ""):
        raise ApiError(415, "send the message as application/json or multipart/form-data")
    try:
        raw = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    body = _parse(raw)
    if body.media is None:
        return body, None
    try:
        return body, (body.media.filename, base64.b64decode(body.media.data, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput("media.data is not valid base64") from None


def _parse(raw) -> MessageSend:
    from fastapi.exceptions import RequestValidationError

    try:
        return MessageSend.model_validate(raw)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from None


def _send(request: Request, principal: Principal, ref: str, body: MessageSend, media: tuple[str, bytes] | None,
          idempotency_key: str | None) -> tuple[dict, bool]:
    from blazzctl import views
    from blazzctl.services import messages

    settings = request.app.state.settings
    path = _media_file(*media) if media else None
    try:
        with unit(request, principal) as session:
            acc = account(session, principal, ref)
            message, created = messages.send(
                session, account=acc, to=body.to, text=body.text, media=str(path) if path else None,
                caption=body.caption, reply_to=body.reply_to, idempotency_key=idempotency_key,
                media_limits_mb=settings.messages.media_max_mb)
            return views.message(message, acc.name), created
    finally:
        if path is not None:  # the bytes are in the database now (or nothing was queued)
            path.unlink(missing_ok=True)


def _media_file(filename: str, data: bytes) -> Path:
    """The upload as a file for `messages.send`, at a path made of its content and name: the same
    upload retried with the same Idempotency-Key is the same media (the service compares paths)."""
    name = Path(filename.replace("\\", "/")).name
    if not name or name in (".", ".."):
        raise InvalidInput(f"media file name {filename!r} is not a file name", hint="Give e.g. photo.jpg.")
    folder = Path(tempfile.gettempdir()) / "blazz-api-media" / hashlib.sha256(data).hexdigest()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


@router.get("/v1/accounts/{ref}/messages", summary="An account's messages, newest first (keyset pages)")
async def list_messages(request: Request, ref: str, chat: str | None = None, status: str | None = None,
                        direction: str | None = Query(None, description="in or out"),
                        before: int | None = Query(None, description="The last id of the previous page."),
                        limit: int = Query(50, ge=1, le=1000), principal: Principal = READ) -> JSONResponse:
    def load():
        from blazzctl import views
        from blazzctl.services import messages

        with reading(request) as session:
            acc = account(session, principal, ref)
            rows = [views.message(m, acc.name) for m in messages.list_messages(
                session, account_id=acc.id, chat=chat, status=status, direction=direction, limit=limit + 1,
                before=before)]
        return pages.page(request, rows, limit, "before")

    return await read(request, load)


def _message(session, principal: Principal, message_id: int):
    """A message of the caller's workspace (another workspace's is NotFound, as if absent)."""
    from blazzctl.models import Message

    message = session.get(Message, message_id)
    if message is None or message.workspace_id != principal.workspace_id:
        raise NotFound(f"message {message_id} not found")
    return message


@router.get("/v1/messages/{message_id}", summary="One message; ?wait=S long-polls until it changes")
async def get(request: Request, message_id: int, wait: float | None = waiting.WaitQuery,
              principal: Principal = READ) -> JSONResponse:
    from blazzctl import views
    from blazzctl.services import messages

    def load() -> dict:
        with reading(request) as session:
            message = _message(session, principal, message_id)
            names = messages.account_names(session, {message.whatsapp_account_id})
            return views.message(message, names[message.whatsapp_account_id][1])

    return await waiting.respond(request, load, wait)


@router.post("/v1/messages/{message_id}/cancel", summary="Cancel a pending message (409 once it is being sent)")
def cancel(request: Request, message_id: int, principal: Principal = SEND) -> dict:
    from blazzctl import views
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import pending

    with unit(request, principal) as session:
        message = _message(session, principal, message_id)
        acc = session.get(WhatsAppAccount, message.whatsapp_account_id)
        (cancelled,) = pending.cancel(session, account=acc, refs=[str(message_id)])
        return views.message(cancelled, acc.name)


@router.post("/v1/messages/{message_id}/resend",
             summary="Queue an `unknown` message again (409 for any other status)",
             description="A message handed to a page that died before WhatsApp gave any evidence ends "
                         "`unknown`; the operator decides. This queues it again with a new WhatsApp id, "
                         "as `blazzctl message resend` does: a second message if WhatsApp did have the first.")
def resend(request: Request, message_id: int, principal: Principal = SEND) -> dict:
    from blazzctl import views
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import pending

    with unit(request, principal) as session:
        message = _message(session, principal, message_id)
        acc = session.get(WhatsAppAccount, message.whatsapp_account_id)
        (queued,) = pending.resend(session, account=acc, refs=[str(message_id)])
        return views.message(queued, acc.name)
