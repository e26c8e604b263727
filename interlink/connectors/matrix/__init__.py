"""Matrix: rooms, members and messages of one account on any homeserver.

Built from the Matrix Client-Server API specification v1.19
(spec.matrix.org/v1.19/client-server-api). The sections it follows:

- "Using access tokens", "Refreshing access tokens" and "Soft logout":
  ``M_UNKNOWN_TOKEN``, ``soft_logout``, ``POST /refresh``;
- "Login": ``POST /login`` with a ``device_id``;
- "Rate limiting": ``M_LIMIT_EXCEEDED``, ``Retry-After``, ``retry_after_ms``;
- "Transaction identifiers", "Filtering" and "Syncing": ``GET /sync``,
  ``limited``, ``prev_batch``, ``next_batch``;
- "Getting events for a room": ``GET /rooms/{roomId}/messages`` and
  ``GET /rooms/{roomId}/event/{eventId}``;
- "Redactions", and "Forming relationships between events" with "Event
  replacements" (``m.replace``), "Rich replies" (``m.in_reply_to``) and
  "Threading" (``m.thread``);
- "Direct Messaging": ``m.direct``.

Tested against Synapse 1.163.

Encrypted rooms are read, but their messages are stored without a body:
Interlink does not decrypt.
"""

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
from interlink.connectors.matrix.connector import MatrixConnector

_HOMESERVER = CredentialField(
    "homeserver_url",
    "Homeserver URL",
    "Base URL of the homeserver's client-server API, such as https://matrix.example.org",
)


def build(context: ConnectorContext) -> Connector:
    return MatrixConnector(context)


INTEGRATION = Integration(
    name="matrix",
    label="Matrix",
    description="Rooms, members and messages of a Matrix account on any homeserver.",
    auth_schemes=(
        AuthScheme(
            "access_token",
            "Access token",
            (
                _HOMESERVER,
                CredentialField("access_token", "Access token", "An access token of the account.", True),
                CredentialField(
                    "refresh_token",
                    "Refresh token",
                    "The refresh token issued with the access token, if the homeserver issued one.",
                    secret=True,
                    required=False,
                ),
            ),
        ),
        AuthScheme(
            "password",
            "Username and password",
            (
                _HOMESERVER,
                CredentialField("username", "Username", "The account's user name or full user id."),
                CredentialField("password", "Password", "The account's password.", True),
            ),
        ),
    ),
    entities=(
        EntityCapabilities("conversation"),
        EntityCapabilities("user"),
        EntityCapabilities("message", write=True),
    ),
    build=build,
    limits=Limits(max_concurrent_requests=4),
    # The cursor is a next_batch token, not a time, so reads need no overlap.
    lookback=timedelta(0),
    # The mapping already drops unsigned.age and the other per-fetch fields,
    # which sit inside events rather than at the top level of a raw record.
    volatile_fields=(),
)

__all__ = ["INTEGRATION"]
