"""Link sessions: starting one for a vendor, completing it with a connection, and the one-time code exchange.

A vendor's backend starts a session (``start_link_session``) and sends its
end user to the returned link. The link carries a random token of which only
the SHA-256 hash is stored; it works until the session expires or is
completed. Completing (``complete_session_with``) makes or reconnects the
connection with credentials that were checked live, creates the webhook
endpoint the vendor asked for, and returns where to send the browser: the
vendor's ``redirect_url`` with a one-time ``code`` (and the vendor's
``state``). ``exchange`` turns that code into the connection id and a new
connection token, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from interlink.api.services import Services
from interlink.connections import create_connection, replace_credentials
from interlink.connectors.base import AuthScheme, Integration
from interlink.connectors.registry import get_integration, integrations
from interlink.crypto import generate_token, hash_token
from interlink.errors import InterlinkError
from interlink.model import ConnectionSettings
from interlink.store.connections import ConnectionRow, get_connection, issue_connection_token
from interlink.store.link_sessions import (
    LinkSessionRow,
    complete_session,
    exchange_code,
    find_session_by_token,
    hold_session,
    insert_session,
    release_session,
)
from interlink.sync.requests import request_syncs
from interlink.sync.scheduler import keep_schedules_in_step, scheduled_entities, wake_schedulers
from interlink.webhooks import UrlGuard, WebhookUrlRejected, create_endpoint
from interlink.webhooks.endpoints import InvalidEndpoint

logger = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(minutes=30)
CODE_LIFETIME = timedelta(minutes=10)
# How long one submission keeps a session to itself while its credentials are checked.
HOLD_DURATION = timedelta(minutes=3)
MAX_URL_LENGTH = 2048
CONNECT_PATH = "/connect"


class LinkSessionInvalid(InterlinkError):
    """A link session request is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class SessionBusy(InterlinkError):
    """Another submission of the same session is being checked right now."""


class ConnectionMissing(InterlinkError):
    """The connection a session reconnects was deleted after the session was created."""


@dataclass(frozen=True)
class NewLinkSession:
    session_id: str
    link_url: str
    expires_at: datetime


@dataclass(frozen=True)
class Completion:
    connection_id: str
    # The browser's next address: the vendor's redirect URL with the code, or None for a done page.
    redirect_to: str | None


@dataclass(frozen=True)
class Exchanged:
    connection_id: str
    connection_token: str
    webhook_secret: str | None


def check_redirect_url(url: str) -> str:
    """Return ``url`` when it is an absolute http or https URL; raise ``LinkSessionInvalid`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LinkSessionInvalid(f"redirect_url {url!r} is not an absolute http or https URL", "redirect_url")
    if parts.fragment:
        raise LinkSessionInvalid("redirect_url must not contain a fragment (#...)", "redirect_url")
    return url


async def start_link_session(
    services: Services,
    guard: UrlGuard,
    *,
    end_user: Mapping[str, Any],
    integration_names: Sequence[str] | None,
    connection_id: str | None,
    redirect_url: str | None,
    webhook_url: str | None,
    state: str | None,
) -> NewLinkSession:
    """Check a vendor's request and store a new link session; return its link, shown only now."""
    known = integrations()
    if integration_names is not None:
        unknown = [name for name in integration_names if name not in known]
        if unknown:
            raise LinkSessionInvalid(
                f"unknown integration {unknown[0]!r}; known integrations: {', '.join(sorted(known))}",
                "integrations",
            )
        integration_names = list(dict.fromkeys(integration_names))
    if connection_id is not None:
        integration_names = await _reconnect_target(services, connection_id, end_user, integration_names)
    if redirect_url is not None:
        check_redirect_url(redirect_url)
    if webhook_url is not None:
        try:
            webhook_url = await guard.check(webhook_url)
        except WebhookUrlRejected as exc:
            raise LinkSessionInvalid(f"webhook_url is rejected: {exc}", "webhook_url") from exc

    token = generate_token("ils")
    now = services.clock()
    async with services.db.write() as connection:
        row = await insert_session(
            connection,
            token_hash=hash_token(token),
            end_user_id=str(end_user["id"]),
            end_user_name=end_user.get("name"),
            end_user_email=end_user.get("email"),
            integrations=integration_names,
            connection_id=connection_id,
            redirect_url=redirect_url,
            webhook_url=webhook_url,
            state=state,
            now=now,
            expires_at=now + LINK_LIFETIME,
        )
    logger.info(
        "link_session.created link_session_id=%s end_user_id=%s reconnect=%s",
        row.id,
        row.end_user_id,
        connection_id is not None,
    )
    base = services.settings.base_url.rstrip("/")
    return NewLinkSession(row.id, f"{base}{CONNECT_PATH}/{token}", row.expires_at)


async def _reconnect_target(
    services: Services,
    connection_id: str,
    end_user: Mapping[str, Any],
    integration_names: Sequence[str] | None,
) -> list[str]:
    async with services.db.read() as connection:
        target = await get_connection(connection, connection_id)
    if target is None:
        raise LinkSessionInvalid(f"connection {connection_id} not found", "connection_id")
    if target.end_user_id != str(end_user["id"]):
        raise LinkSessionInvalid(
            f"connection {connection_id} belongs to end user {target.end_user_id!r}, "
            f"not {end_user['id']!r}; pass the connection's end user",
            "end_user.id",
        )
    if integration_names is not None and list(integration_names) != [target.integration]:
        raise LinkSessionInvalid(
            f"a reconnect of connection {connection_id} can only use its integration "
            f"{target.integration!r}; leave integrations out",
            "integrations",
        )
    return [target.integration]


async def find_session(services: Services, token: str) -> LinkSessionRow | None:
    async with services.db.read() as connection:
        return await find_session_by_token(connection, hash_token(token))


def session_problem(row: LinkSessionRow | None, now: datetime) -> str | None:
    """Return why a session cannot be used (``unknown``, ``completed``, ``expired``), or None."""
    if row is None:
        return "unknown"
    if row.completed_at is not None:
        return "completed"
    if row.expires_at <= now:
        return "expired"
    return None


def allowed_integrations(row: LinkSessionRow) -> list[Integration]:
    """Return the integrations the session offers, in the vendor's order or else by label."""
    if row.integrations is not None:
        found = [get_integration(name) for name in row.integrations]
        return [integration for integration in found if integration is not None]
    return sorted(integrations().values(), key=lambda integration: integration.label.lower())


async def hold(services: Services, row: LinkSessionRow) -> None:
    """Claim the session for one submission; raise ``SessionBusy`` when another submission has it."""
    now = services.clock()
    async with services.db.write() as connection:
        if not await hold_session(connection, row.id, now=now, until=now + HOLD_DURATION):
            raise SessionBusy(f"link session {row.id} is held by another submission")


async def release(services: Services, row: LinkSessionRow) -> None:
    async with services.db.write() as connection:
        await release_session(connection, row.id)


async def complete_session_with(
    services: Services,
    guard: UrlGuard,
    row: LinkSessionRow,
    integration: Integration,
    scheme: AuthScheme,
    credentials: Mapping[str, str],
) -> Completion:
    """Make (or reconnect) the session's connection with credentials checked live, then complete the session.

    Raises ``InvalidConnectionInput`` when the source rejects the credentials;
    nothing is stored then. The caller has claimed the session with ``hold``.
    """
    if row.connection_id is not None:
        connection = await _reconnect(services, row.connection_id, credentials)
    else:
        connection = await _create(services, row, integration, scheme, credentials)

    endpoint_id, sealed_secret = await _webhook_endpoint(services, guard, row, connection.id)
    code = generate_token("ilx")
    now = services.clock()
    async with services.db.write() as db:
        completed = await complete_session(
            db,
            row.id,
            connection_id=connection.id,
            code_hash=hash_token(code),
            code_expires_at=now + CODE_LIFETIME,
            webhook_endpoint_id=endpoint_id,
            webhook_secret=sealed_secret,
            now=now,
        )
    if not completed:
        # Unreachable while the caller holds the session; kept so a code is never handed out twice.
        raise SessionBusy(f"link session {row.id} was completed by another submission")
    logger.info(
        "link_session.completed link_session_id=%s connection_id=%s integration=%s reconnect=%s",
        row.id,
        connection.id,
        integration.name,
        row.connection_id is not None,
    )
    return Completion(connection.id, _vendor_redirect(row, code))


async def _create(
    services: Services,
    row: LinkSessionRow,
    integration: Integration,
    scheme: AuthScheme,
    credentials: Mapping[str, str],
) -> ConnectionRow:
    created = await create_connection(
        services.db,
        services.credentials,
        services.http_factory,
        integration_name=integration.name,
        end_user={"id": row.end_user_id, "name": row.end_user_name, "email": row.end_user_email},
        credentials=credentials,
        auth_scheme=scheme.name,
        settings=ConnectionSettings(),
    )
    # The token issued here is never shown: the exchange issues the one the vendor gets.
    connection = created.connection
    async with services.db.write() as db:
        await keep_schedules_in_step(
            db, connection.id, connection.integration, connection.settings, now=services.clock()
        )
    wake_schedulers()
    return connection


async def _reconnect(services: Services, connection_id: str, credentials: Mapping[str, str]) -> ConnectionRow:
    async with services.db.read() as db:
        connection = await get_connection(db, connection_id)
    if connection is None:
        raise ConnectionMissing(f"connection {connection_id} was deleted after the link session was created")
    await replace_credentials(
        services.db, services.credentials, services.http_factory, connection, credentials
    )
    async with services.db.write() as db:
        reconnected = await get_connection(db, connection_id)
        assert reconnected is not None
        await keep_schedules_in_step(
            db, reconnected.id, reconnected.integration, reconnected.settings, now=services.clock()
        )
    wake_schedulers()
    # Resume at once from the stored cursors instead of waiting for the schedule.
    integration = get_integration(reconnected.integration)
    if integration is not None:
        entities = scheduled_entities(integration, ConnectionSettings.model_validate(reconnected.settings))
        await request_syncs(
            services.db,
            services.dispatcher,
            connection_id=connection_id,
            entities=[capabilities.entity for capabilities in entities],
            mode="incremental",
            trigger="api",
            now=services.clock(),
        )
    return reconnected


async def _webhook_endpoint(
    services: Services, guard: UrlGuard, row: LinkSessionRow, connection_id: str
) -> tuple[str | None, bytes | None]:
    if row.webhook_url is None:
        return None, None
    try:
        endpoint, secret = await create_endpoint(
            services.db,
            row.webhook_url,
            ["*"],
            connection_id,
            f"Created by the connect flow for end user {row.end_user_id}",
            credentials=services.credentials,
            guard=guard,
            now=services.clock(),
        )
    except InvalidEndpoint as exc:
        # NOTE: the URL passed its check when the session was created; if it fails now (its host
        # resolves elsewhere), the connection remains and the exchange response has no webhook_secret.
        logger.warning(
            "link_session.webhook_rejected link_session_id=%s connection_id=%s error=%s",
            row.id,
            connection_id,
            exc,
        )
        return None, None
    return endpoint.id, services.credentials.encrypt({"secret": secret})


def _vendor_redirect(row: LinkSessionRow, code: str) -> str | None:
    if row.redirect_url is None:
        return None
    values = {"code": code}
    if row.state is not None:
        values["state"] = row.state
    separator = "&" if urlsplit(row.redirect_url).query else "?"
    return f"{row.redirect_url}{separator}{urlencode(values)}"


async def exchange(services: Services, code: str) -> Exchanged | None:
    """Turn a one-time code into the connection id and a new connection token; None when it cannot be used.

    The new token revokes every earlier token of the connection.
    """
    token = generate_token("ilc")
    now = services.clock()
    async with services.db.write() as db:
        row = await exchange_code(db, hash_token(code), now=now)
        if row is None or row.result_connection_id is None:
            return None
        if await get_connection(db, row.result_connection_id) is None:
            return None
        await issue_connection_token(db, row.result_connection_id, hash_token(token))
    secret = services.credentials.decrypt(row.webhook_secret)["secret"] if row.webhook_secret else None
    logger.info(
        "link_session.exchanged link_session_id=%s connection_id=%s", row.id, row.result_connection_id
    )
    return Exchanged(row.result_connection_id, token, secret)
