"""The ``tryton`` integration: purchases, parties, products, production works, locations and users."""

from __future__ import annotations

from datetime import timedelta

from interlink.connectors.base import (
    AuthScheme,
    Connector,
    ConnectorContext,
    CredentialField,
    EntityCapabilities,
    Integration,
    Limits,
)
from interlink.connectors.tryton.connector import TrytonConnector, build_client

_URL = CredentialField("url", "Server URL", "Root URL of the Tryton server, such as https://erp.example.com/")
_DATABASE = CredentialField("database", "Database", "Name of the Tryton database.")

LOOKBACK = timedelta(minutes=10)


def _build(context: ConnectorContext) -> Connector:
    return TrytonConnector(context, build_client(context), LOOKBACK)


INTEGRATION = Integration(
    name="tryton",
    label="Tryton",
    description="Tryton ERP 8.x through its JSON-RPC or REST API.",
    auth_schemes=(
        AuthScheme(
            "api_key",
            "REST application key",
            (
                _URL,
                _DATABASE,
                CredentialField(
                    "api_key",
                    "Application key",
                    "A validated REST application key (User > Applications) of a user who may "
                    "read purchases.",
                    secret=True,
                ),
            ),
        ),
        AuthScheme(
            "password",
            "Username and password",
            (
                _URL,
                _DATABASE,
                CredentialField("username", "Username", "Login of a Tryton user who may read purchases."),
                CredentialField("password", "Password", "That user's password.", secret=True),
            ),
        ),
    ),
    entities=tuple(
        EntityCapabilities(entity)
        for entity in ("purchase_order", "vendor", "part", "work_order", "location", "user")
    ),
    build=_build,
    limits=Limits(max_concurrent_requests=4),
    # Tryton stamps changes with the transaction's start time: a long transaction
    # can commit a change stamped well before the high-water mark of a read.
    lookback=LOOKBACK,
)
