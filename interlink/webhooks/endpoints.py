"""Managing webhook endpoints: create, change, rotate the secret, delete, and redeliver events.

``create_endpoint`` is the entry point for every caller that makes an
endpoint: the HTTP API, and the hosted connect flow for a link session's
``webhook_url``. Secrets are stored encrypted with the credential keys and
returned in clear text only by ``create_endpoint`` and ``rotate_secret``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from interlink.connectors.http import redact_url
from interlink.crypto import CredentialBox
from interlink.errors import InterlinkError
from interlink.store import Database
from interlink.store.connections import get_connection
from interlink.store.events import EVENT_TYPES
from interlink.store.webhooks import (
    ALL_EVENT_TYPES,
    DeliveryRow,
    EndpointRow,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    get_event,
    insert_endpoint,
    requeue_delivery,
    update_endpoint,
)
from interlink.store.webhooks import enabled_endpoints as list_enabled_endpoints
from interlink.webhooks.signing import generate_secret
from interlink.webhooks.urls import UrlGuard, WebhookUrlRejected
from interlink.webhooks.wakeup import request_wakeup

logger = logging.getLogger(__name__)

# How long the replaced secret keeps signing after a rotation, so receivers can switch over.
ROTATION_GRACE_PERIOD = timedelta(hours=24)
MAX_DESCRIPTION_LENGTH = 1000


class InvalidEndpoint(InterlinkError):
    """An endpoint's field is invalid; ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(InterlinkError):
    """No webhook endpoint, or no event, has the given id."""


class RedeliveryRejected(InterlinkError):
    """An event cannot be redelivered to the endpoints asked for."""


def seal_secret(credentials: CredentialBox, secret: str) -> bytes:
    return credentials.encrypt({"secret": secret})


def open_secret(credentials: CredentialBox, sealed: bytes) -> str:
    return credentials.decrypt(sealed)["secret"]


def signing_secrets(credentials: CredentialBox, endpoint: EndpointRow, now: datetime) -> list[str]:
    """Return the secrets that sign for ``endpoint`` now: the current one, then one in its grace period."""
    secrets = [open_secret(credentials, endpoint.secret)]
    expires_at = endpoint.previous_secret_expires_at
    if endpoint.previous_secret is not None and expires_at is not None and expires_at > now:
        secrets.append(open_secret(credentials, endpoint.previous_secret))
    return secrets


def validate_event_types(event_types: Sequence[str]) -> list[str]:
    """Return the event types without duplicates; raise ``InvalidEndpoint`` if empty or unknown."""
    if not event_types:
        raise InvalidEndpoint(
            'event_types is empty; list the event types to receive, or ["*"] for all', "event_types"
        )
    unknown = [name for name in event_types if name != ALL_EVENT_TYPES and name not in EVENT_TYPES]
    if unknown:
        raise InvalidEndpoint(
            f"unknown event type {unknown[0]!r}; valid types: {', '.join(EVENT_TYPES)}, or * for all",
            "event_types",
        )
    return list(dict.fromkeys(event_types))


def validate_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidEndpoint(
            f"description is {len(description)} characters long; the maximum is {MAX_DESCRIPTION_LENGTH}",
            "description",
        )


async def _checked_url(guard: UrlGuard, url: str) -> str:
    try:
        return await guard.check(url)
    except WebhookUrlRejected as exc:
        raise InvalidEndpoint(str(exc), "url") from exc


async def create_endpoint(
    db: Database,
    url: str,
    event_types: Sequence[str],
    connection_id: str | None = None,
    description: str | None = None,
    *,
    credentials: CredentialBox,
    guard: UrlGuard,
    now: datetime | None = None,
) -> tuple[EndpointRow, str]:
    """Check and store a new endpoint; return it with its signing secret, which is shown only now.

    With ``connection_id`` the endpoint receives only that connection's
    events. It receives the events committed after it was created. Raises
    ``InvalidEndpoint`` naming the field: a rejected URL (checked with
    ``guard``, see ``urls.py``), an unknown event type, an unknown connection.
    """
    types = validate_event_types(event_types)
    validate_description(description)
    checked_url = await _checked_url(guard, url)
    secret = generate_secret()
    async with db.write() as connection:
        if connection_id is not None and await get_connection(connection, connection_id) is None:
            raise InvalidEndpoint(f"connection {connection_id} not found", "connection_id")
        endpoint = await insert_endpoint(
            connection,
            url=checked_url,
            event_types=types,
            connection_id=connection_id,
            description=description,
            secret=seal_secret(credentials, secret),
            now=now or datetime.now(UTC),
        )
    logger.info(
        "webhook.endpoint.created endpoint_id=%s connection_id=%s url=%s",
        endpoint.id,
        connection_id,
        redact_url(checked_url),
    )
    return endpoint, secret


async def change_endpoint(
    db: Database,
    endpoint_id: str,
    *,
    guard: UrlGuard,
    now: datetime,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    clear_description: bool = False,
    status: str | None = None,
) -> EndpointRow:
    """Change an endpoint's URL, event types, description or status; return it as stored.

    Disabling emits ``webhook_endpoint.disabled`` and fails its pending
    deliveries; enabling clears the disabled reason and the failure streak.
    Only an HTTPS endpoint has a URL to change.
    """
    values: dict[str, object] = {}
    if url is not None:
        values["url"] = await _checked_url(guard, url)
    if event_types is not None:
        values["event_types"] = validate_event_types(event_types)
    if description is not None or clear_description:
        validate_description(description)
        values["description"] = description
    async with db.write() as connection:
        endpoint = await get_endpoint(connection, endpoint_id)
        if endpoint is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        if "url" in values and endpoint.kind != "https":
            raise InvalidEndpoint(
                f"webhook endpoint {endpoint_id} is of kind {endpoint.kind}, which has no url to change; "
                "create a new endpoint to post elsewhere",
                "url",
            )
        if values:
            await update_endpoint(connection, endpoint_id, now=now, **values)
        if status == "disabled":
            await disable_endpoint(
                connection,
                endpoint_id,
                reason="disabled_by_operator",
                detail="an operator disabled the endpoint",
                url=redact_url(str(values.get("url", endpoint.url))),
                now=now,
            )
        elif status == "enabled":
            await enable_endpoint(connection, endpoint_id, now=now)
        changed = await get_endpoint(connection, endpoint_id)
    assert changed is not None
    logger.info(
        "webhook.endpoint.changed endpoint_id=%s fields=%s status=%s",
        endpoint_id,
        ",".join(sorted(values)),
        changed.status,
    )
    return changed


async def rotate_secret(
    db: Database,
    endpoint_id: str,
    *,
    credentials: CredentialBox,
    now: datetime,
    grace_period: timedelta = ROTATION_GRACE_PERIOD,
) -> tuple[EndpointRow, str]:
    """Give the endpoint a new secret; the old one keeps signing for ``grace_period``.

    Returns the endpoint and the new secret, shown only now. A secret that was
    still in its grace period from an earlier rotation stops signing. Raises
    ``InvalidEndpoint`` for an endpoint of another kind than HTTPS, which signs nothing.
    """
    secret = generate_secret()
    async with db.write() as connection:
        endpoint = await get_endpoint(connection, endpoint_id)
        if endpoint is None:
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        if endpoint.kind != "https":
            raise InvalidEndpoint(
                f"webhook endpoint {endpoint_id} is of kind {endpoint.kind}, which has no signing secret",
                "kind",
            )
        await update_endpoint(
            connection,
            endpoint_id,
            now=now,
            secret=seal_secret(credentials, secret),
            previous_secret=endpoint.secret,
            previous_secret_expires_at=now + grace_period,
        )
        rotated = await get_endpoint(connection, endpoint_id)
    assert rotated is not None
    logger.info("webhook.endpoint.secret_rotated endpoint_id=%s", endpoint_id)
    return rotated, secret


async def remove_endpoint(db: Database, endpoint_id: str) -> None:
    """Delete an endpoint with its deliveries and log; raise ``NotFound`` when it does not exist."""
    async with db.write() as connection:
        if not await delete_endpoint(connection, endpoint_id):
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
    logger.info("webhook.endpoint.deleted endpoint_id=%s", endpoint_id)


async def redeliver_event(
    db: Database, event_id: str, *, endpoint_id: str | None = None, now: datetime
) -> list[DeliveryRow]:
    """Queue an event again, with the same ``webhook-id`` and body, and a fresh retry schedule.

    Without ``endpoint_id`` it goes to every enabled endpoint subscribed to
    its type and connection. Raises ``NotFound`` for an unknown event
    or endpoint, ``RedeliveryRejected`` when the endpoint is disabled or does
    not subscribe to the event, or when no endpoint does.
    """
    async with db.write() as connection:
        event = await get_event(connection, event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found")
        if endpoint_id is not None:
            endpoint = await get_endpoint(connection, endpoint_id)
            if endpoint is None:
                raise NotFound(f"webhook endpoint {endpoint_id} not found")
            if endpoint.status != "enabled":
                raise RedeliveryRejected(
                    f"webhook endpoint {endpoint_id} is disabled; enable it with PATCH status=enabled first"
                )
            if not endpoint.subscribes_to(event.type, event.connection_id):
                raise RedeliveryRejected(
                    f"webhook endpoint {endpoint_id} does not subscribe to {event.type} events"
                    + (" of this connection" if endpoint.connection_id else "")
                )
            targets = [endpoint]
        else:
            targets = [
                endpoint
                for endpoint in await list_enabled_endpoints(connection)
                if endpoint.subscribes_to(event.type, event.connection_id)
            ]
            if not targets:
                raise RedeliveryRejected(f"no enabled webhook endpoint subscribes to {event.type} events")
        queued = [await requeue_delivery(connection, event.id, target.id, now=now) for target in targets]
        request_wakeup(connection)
    logger.info("webhook.event.redelivery_queued event_id=%s endpoints=%d", event_id, len(queued))
    return queued
