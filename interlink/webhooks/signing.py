"""Standard Webhooks signing secrets, message bodies and signature headers.

The signature is ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed
with the secret's decoded bytes, as the Standard Webhooks specification
defines it; the ``standardwebhooks`` package computes it. During a secret
rotation the ``webhook-signature`` header carries one signature per valid
secret, separated by spaces, so a receiver verifies with either secret.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from interlink.model import format_utc
from interlink.store.events import Event

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
# The specification requires 24 to 64 random bytes; 32 bytes equal the size of a SHA-256 digest.
SECRET_BYTES = 32


def generate_secret() -> str:
    """Return a new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_body(event: Event) -> bytes:
    """Serialize an event as the webhook body ``{"type", "timestamp", "data"}``.

    The bytes depend only on the stored event, so every retry and every
    redelivery sends, and signs, the same body. ``data`` gains the event's
    ``connection_id`` when the event has one and its data lacks it, so a
    receiver of several connections' events can tell them apart.
    """
    data: dict[str, Any] = dict(event.data)
    if event.connection_id is not None:
        data.setdefault("connection_id", event.connection_id)
    body = {"type": event.type, "timestamp": format_utc(event.created_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signature_header(secrets_in_use: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: one ``v1,...`` signature per secret, space-separated."""
    if not secrets_in_use:
        raise ValueError("at least one signing secret is needed to sign a webhook")
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return " ".join(Webhook(secret).sign(message_id, moment, body) for secret in secrets_in_use)


def signed_headers(
    secrets_in_use: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_in_use, message_id, timestamp, body),
        "content-type": "application/json",
    }
