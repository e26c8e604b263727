"""Creating connections and replacing their credentials: validated, checked live, then stored.

Shared by the HTTP API and the CLI. Nothing is stored unless the source
accepted the credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interlink.connectors.base import AuthScheme, ConnectorContext, Integration
from interlink.connectors.errors import ConnectorError
from interlink.connectors.registry import get_integration, integrations
from interlink.crypto import CredentialBox, generate_token, hash_token
from interlink.errors import InterlinkError
from interlink.model import ConnectionSettings
from interlink.store import Database
from interlink.store.connections import (
    ConnectionRow,
    get_connection,
    insert_connection,
    issue_connection_token,
    transition_status,
    update_connection,
)
from interlink.sync.engine import HttpFactory

logger = logging.getLogger(__name__)


class InvalidConnectionInput(InterlinkError):
    """Connection input is invalid; ``field`` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CreatedConnection:
    connection: ConnectionRow
    token: str


def resolve_integration(name: str) -> Integration:
    integration = get_integration(name)
    if integration is None:
        known = ", ".join(sorted(integrations()))
        raise InvalidConnectionInput(
            f"unknown integration {name!r}; known integrations: {known}", field="integration"
        )
    return integration


def resolve_auth_scheme(
    integration: Integration, credentials: Mapping[str, str], name: str | None
) -> AuthScheme:
    """Pick the auth scheme: the one named, or the only one the credential fields fit exactly."""
    if name is not None:
        scheme = integration.auth_scheme(name)
        if scheme is None:
            valid = ", ".join(s.name for s in integration.auth_schemes)
            raise InvalidConnectionInput(
                f"integration {integration.name} has no auth scheme {name!r}; valid schemes: {valid}",
                field="auth_scheme",
            )
        _check_fields(scheme, credentials)
        return scheme
    given = set(credentials)
    fitting = [
        scheme
        for scheme in integration.auth_schemes
        if scheme.field_names(required_only=True) <= given <= scheme.field_names()
    ]
    if len(fitting) == 1:
        return fitting[0]
    expected = "; ".join(
        f"{scheme.name}: {', '.join(sorted(scheme.field_names(required_only=True)))}"
        for scheme in integration.auth_schemes
    )
    reason = "match several auth schemes" if fitting else "match no auth scheme"
    raise InvalidConnectionInput(
        f"the credential fields {', '.join(sorted(given)) or '(none)'} {reason} of {integration.name}; "
        f"required fields per scheme: {expected}",
        field="credentials",
    )


def _check_fields(scheme: AuthScheme, credentials: Mapping[str, str]) -> None:
    missing = sorted(scheme.field_names(required_only=True) - set(credentials))
    if missing:
        raise InvalidConnectionInput(
            f"credentials.{missing[0]} is missing; scheme {scheme.name} requires "
            f"{', '.join(sorted(scheme.field_names(required_only=True)))}",
            field=f"credentials.{missing[0]}",
        )
    unknown = sorted(set(credentials) - scheme.field_names())
    if unknown:
        raise InvalidConnectionInput(
            f"credentials.{unknown[0]} is not a field of scheme {scheme.name}; "
            f"valid fields: {', '.join(sorted(scheme.field_names()))}",
            field=f"credentials.{unknown[0]}",
        )
    empty = sorted(name for name, value in credentials.items() if not str(value).strip())
    if empty:
        raise InvalidConnectionInput(f"credentials.{empty[0]} is empty", field=f"credentials.{empty[0]}")


def check_entities(integration: Integration, settings: ConnectionSettings) -> None:
    if settings.entities is None:
        return
    unknown = sorted(set(settings.entities) - set(integration.entity_names()))
    if unknown:
        raise InvalidConnectionInput(
            f"entity {unknown[0]!r} is not read by {integration.name}; "
            f"valid entities: {', '.join(integration.entity_names())}",
            field="settings.entities",
        )


async def check_credentials(
    integration: Integration,
    scheme: AuthScheme,
    credentials: Mapping[str, str],
    http_factory: HttpFactory,
    *,
    connection_id: str = "con_check",
) -> dict[str, str]:
    """Make one authenticated call with the credentials; return them, possibly completed by the connector."""
    stored: dict[str, str] = dict(credentials)

    async def save(values: Mapping[str, str]) -> None:
        stored.update(values)

    async with http_factory() as http:
        connector = integration.build(
            ConnectorContext(
                connection_id=connection_id,
                auth_scheme=scheme.name,
                credentials=dict(credentials),
                http=http,
                save_credentials=save,
            )
        )
        try:
            await connector.check()
        except ConnectorError as exc:
            logger.info("connection.check_failed integration=%s code=%s", integration.name, exc.reason_code)
            raise InvalidConnectionInput(
                f"{integration.label} rejected the credentials: {exc}", field="credentials"
            ) from exc
    return stored


async def create_connection(
    db: Database,
    box: CredentialBox,
    http_factory: HttpFactory,
    *,
    integration_name: str,
    end_user: Mapping[str, Any],
    credentials: Mapping[str, str],
    auth_scheme: str | None,
    settings: ConnectionSettings,
) -> CreatedConnection:
    integration = resolve_integration(integration_name)
    scheme = resolve_auth_scheme(integration, credentials, auth_scheme)
    check_entities(integration, settings)
    checked = await check_credentials(integration, scheme, credentials, http_factory)
    token = generate_token("ilc")
    async with db.write() as connection:
        row = await insert_connection(
            connection,
            integration=integration.name,
            auth_scheme=scheme.name,
            end_user_id=str(end_user["id"]),
            end_user_name=end_user.get("name"),
            end_user_email=end_user.get("email"),
            credentials=box.encrypt(checked),
            settings=settings.model_dump(mode="json"),
        )
        await issue_connection_token(connection, row.id, hash_token(token))
    logger.info("connection.created connection_id=%s integration=%s", row.id, integration.name)
    return CreatedConnection(connection=row, token=token)


async def replace_credentials(
    db: Database,
    box: CredentialBox,
    http_factory: HttpFactory,
    connection: ConnectionRow,
    credentials: Mapping[str, str],
) -> str:
    """Check new credentials live, store them, reactivate the connection and issue a new token.

    Records and cursors are kept, so syncing resumes where it stopped.
    """
    integration = resolve_integration(connection.integration)
    scheme = resolve_auth_scheme(integration, credentials, None)
    checked = await check_credentials(
        integration, scheme, credentials, http_factory, connection_id=connection.id
    )
    token = generate_token("ilc")
    async with db.write() as db_connection:
        await update_connection(
            db_connection, connection.id, credentials=box.encrypt(checked), auth_scheme=scheme.name
        )
        await transition_status(db_connection, connection.id, "active")
        await issue_connection_token(db_connection, connection.id, hash_token(token))
    logger.info("connection.reconnected connection_id=%s", connection.id)
    return token


async def load_connection(db: Database, connection_id: str) -> ConnectionRow | None:
    async with db.read() as connection:
        return await get_connection(connection, connection_id)
