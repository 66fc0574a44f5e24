"""Standard Webhooks signatures (v1: HMAC-SHA256).

A secret is ``whsec_`` + standard base64 of 32 random bytes; the HMAC key is the
decoded bytes. The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over
the exact bytes sent, and the signature header is ``v1,<base64 digest>`` (two of them,
space-separated, while a rotated secret's grace lasts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from blazzctl.errors import InvalidInput

PREFIX = "whsec_"
KEY_BYTES = 32
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64  # the spec's bounds for symmetric secrets


def generate_secret() -> str:
    """A new ``whsec_…`` secret from 32 random bytes."""
    return PREFIX + base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; InvalidInput when it is not one."""
    hint = "Give whsec_ followed by standard base64 of 24-64 random bytes, or omit --secret to get one."
    if not secret.startswith(PREFIX):
        raise InvalidInput("the webhook secret must start with whsec_", hint=hint)
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the webhook secret is not valid base64 after whsec_", hint=hint) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidInput(f"the webhook secret decodes to {len(key)} bytes; 24-64 are needed", hint=hint)
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes, *,
            previous: bytes | None = None) -> dict[str, str]:
    """The request headers of one delivery attempt (the id is the event id; the timestamp is per attempt).

    ``previous`` is the replaced key during a secret rotation: its signature follows the new
    one, space-separated, as the spec allows, so a receiver verifies with either secret.
    """
    signatures = [signature(key, msg_id, timestamp, body)]
    if previous is not None:
        signatures.append(signature(previous, msg_id, timestamp, body))
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
