"""Standard Webhooks secrets, bodies and signatures, checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from interlink.store.events import Event
from interlink.webhooks.signing import generate_secret, message_body, signature_header, signed_headers

EVENT = Event(
    id="evt_0192a4c6e0d47a3e8b1f2c3d4e5f6a7b",
    type="sync.completed",
    connection_id="con_1",
    data={"run_id": "run_1", "entity": "vendor", "counts": {"created": 2}, "note": "Größe ✓"},
    created_at=datetime(2026, 6, 1, 12, 0, 5, 250000, tzinfo=UTC),
    seq=7,
    pk=3,
)


def test_secret_is_prefixed_base64_of_32_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_secrets_differ() -> None:
    assert len({generate_secret() for _ in range(20)}) == 20


def test_body_has_type_timestamp_and_data() -> None:
    body = json.loads(message_body(EVENT))
    assert body["type"] == "sync.completed"
    assert body["timestamp"] == "2026-06-01T12:00:05.250000Z"
    assert body["data"]["run_id"] == "run_1"
    assert body["data"]["note"] == "Größe ✓"


def test_body_carries_connection_id_in_data() -> None:
    assert json.loads(message_body(EVENT))["data"]["connection_id"] == "con_1"


def test_body_bytes_are_stable() -> None:
    assert message_body(EVENT) == message_body(EVENT)


def test_signature_verifies_with_package() -> None:
    secret = generate_secret()
    body = message_body(EVENT)
    headers = signed_headers([secret], EVENT.id, int(time.time()), body)
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "sync.completed"


def test_signature_fails_for_changed_body() -> None:
    secret = generate_secret()
    body = message_body(EVENT)
    headers = signed_headers([secret], EVENT.id, int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"run_1", b"run_2"), headers)


def test_signature_fails_for_other_secret() -> None:
    body = message_body(EVENT)
    headers = signed_headers([generate_secret()], EVENT.id, int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_rotation_header_verifies_with_each_secret() -> None:
    new, old = generate_secret(), generate_secret()
    body = message_body(EVENT)
    headers = signed_headers([new, old], EVENT.id, int(time.time()), body)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(signature.startswith("v1,") for signature in signatures)
    assert Webhook(new).verify(body, headers)["type"] == "sync.completed"
    assert Webhook(old).verify(body, headers)["type"] == "sync.completed"


def test_signature_covers_id_and_timestamp() -> None:
    secret = generate_secret()
    body = message_body(EVENT)
    first = signature_header([secret], EVENT.id, 1_800_000_000, body)
    assert signature_header([secret], EVENT.id, 1_800_000_001, body) != first
    assert signature_header([secret], "evt_other", 1_800_000_000, body) != first


def test_signing_without_secret_raises() -> None:
    with pytest.raises(ValueError, match="at least one signing secret"):
        signature_header([], EVENT.id, 1_800_000_000, b"{}")
