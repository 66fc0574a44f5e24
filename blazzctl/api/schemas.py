"""Request bodies. Responses are the CLI's ``--json`` views (``blazzctl.views``), unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, not silently ignored


class AccountCreate(Body):
    name: str = Field(description="Unique among the workspace's accounts.")
    phone: str | None = Field(None, description="Phone number in any form (stored as E.164).")
    provider: str = Field("webjs", description="webjs (WhatsApp Web).")


class AccountUpdate(Body):
    name: str | None = None
    phone: str | None = None


class Connect(Body):
    pair_phone: str | None = Field(None, description="Log in with an 8-character pairing code for this phone "
                                                     "number instead of a QR.")


class Media(Body):
    filename: str = Field(description="Its name; the type is guessed from its extension.")
    data: str = Field(description="The file's bytes, base64.")


class MessageSend(Body):
    to: str = Field(description="Phone number (any form) or chat JID.")
    text: str | None = None
    media: Media | None = None
    caption: str | None = Field(None, description="Caption of the media.")
    reply_to: str | None = Field(None, description="WhatsApp id of a message to quote.")


class SyncCreate(Body):
    accounts: list[str] | None = Field(None, description="Accounts (id, uuid, session id or name); default: "
                                                          "every running account of the workspace.")
    kind: Literal["chats", "contacts", "groups", "all"] = "all"


class WebhookCreate(Body):
    url: str
    events: list[str] | None = Field(None, description="Event types; default: every type.")
    secret: str | None = Field(None, description="whsec_ signing secret; default: a new random one.")


class WebhookUpdate(Body):
    url: str | None = None
    events: list[str] | Literal["all"] | None = Field(None, description='Event types, or "all".')
    active: bool | None = None
