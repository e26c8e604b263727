"""Matrix rooms as event targets: endpoints of kind ``matrix`` and the sender that posts to them.

An endpoint of kind ``matrix`` names a Matrix connection (``connection_id``)
and a room that the connection's account has joined (``room_id``). It
receives the events of its types from every connection, and each event
becomes one ``m.notice`` message in the room, worded by ``matrix_messages``.

Deliveries to a room use the leases, attempt log and retry schedule of
``delivery.py``. The Matrix transaction id is derived from the event id, so
the homeserver responds to a repeated send of an event with the message it
posted the first time. Synapse 1.163 stores transaction ids per device and
room for 24 hours, in its database. A failed send fails the attempt and
nothing else, because this module never changes the connection's status.
The connector's own session repair (a token refresh or a new login) still
runs and stores the new credentials.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote

import httpx

from interlink.connectors.errors import ConnectorError, RetryableError
from interlink.connectors.http import create_client
from interlink.connectors.matrix.client import MatrixClient
from interlink.crypto import CredentialBox, SecretKeyError
from interlink.errors import InterlinkError
from interlink.store import Database
from interlink.store.connections import ConnectionRow, get_connection, update_connection
from interlink.store.events import Event
from interlink.store.webhooks import EndpointRow, insert_endpoint
from interlink.sync.engine import HttpFactory
from interlink.webhooks.delivery import AttemptResult, shorten_error
from interlink.webhooks.endpoints import InvalidEndpoint, validate_description, validate_event_types
from interlink.webhooks.matrix_messages import format_message, message_content
from interlink.webhooks.transport import DELIVERY_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

MATRIX_INTEGRATION = "matrix"
MAX_ROOM_ID_LENGTH = 255
# A successful PUT /rooms/{roomId}/send returns HTTP 200 and the event id.
# The client raises on an error status.
SENT_STATUS_CODE = 200
_UNUSABLE_STATUSES = ("disabled", "reauthorization_required")


class RoomCheckUnavailable(InterlinkError):
    """The homeserver could not be asked which rooms the connection joined; a later request can succeed."""


class _Unusable(InterlinkError):
    """The endpoint's connection cannot post now. The message gives the reason and the next step."""


def matrix_uri(room_id: str) -> str:
    """Return the room's ``matrix:`` URI (Matrix specification v1.2 and later, "Matrix URI scheme")."""
    return "matrix:roomid/" + quote(room_id.removeprefix("!"), safe=":")


def transaction_id(event_id: str) -> str:
    """Return the Matrix transaction id of an event, the same for every attempt and every process."""
    # NOTE: Synapse 1.163 deletes a transaction id after 24 hours, so a retry that comes later than
    # that after a lost response posts the event a second time.
    return f"interlink-event-{event_id}"


def validate_room_id(room_id: str | None) -> str:
    """Return the room id, or raise ``InvalidEndpoint`` when it is missing or not a room id."""
    if room_id is None or not room_id.strip():
        raise InvalidEndpoint(
            "room_id is missing; give the id of the room to post to, such as !abc:example.org", "room_id"
        )
    if not room_id.startswith("!") or len(room_id) > MAX_ROOM_ID_LENGTH or any(c.isspace() for c in room_id):
        raise InvalidEndpoint(
            f"room_id {room_id!r} is not a Matrix room id; give the id that starts with '!', "
            "not a room alias (#...) or a room name",
            "room_id",
        )
    return room_id


def is_own_message_change(endpoint: EndpointRow, event: Event) -> bool:
    """Return whether the event reports only changed messages of the endpoint's own Matrix connection.

    Those messages include the ones this endpoint posted, so a message about
    them would cause another change at the next sync, without end.
    """
    if endpoint.kind != "matrix" or event.type != "records.changed":
        return False
    if event.connection_id is None or event.connection_id != endpoint.connection_id:
        return False
    entities = event.data.get("entities")
    return isinstance(entities, dict) and set(entities) == {"message"}


# Sending


class MatrixTarget:
    """Posts events to Matrix rooms through Matrix connections, and checks rooms for new endpoints."""

    def __init__(
        self,
        db: Database,
        credentials: CredentialBox,
        *,
        http_factory: HttpFactory = create_client,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        self._db = db
        self._credentials = credentials
        self._http_factory = http_factory
        self._http: httpx.AsyncClient | None = None
        self.timeout = timeout

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send(self, event: Event, endpoint: EndpointRow) -> AttemptResult:
        """Post the event's message to the endpoint's room, and report any failure in the result."""
        started = time.monotonic()

        def result(
            status_code: int | None, error: str | None, retry_after: float | None = None
        ) -> AttemptResult:
            latency_ms = round((time.monotonic() - started) * 1000)
            return AttemptResult(status_code, shorten_error(error), latency_ms, retry_after)

        connection_id = endpoint.connection_id or "(none)"
        room_id = endpoint.room_id
        if room_id is None:
            return result(None, "the endpoint names no Matrix room; create it again with a room_id")
        content = message_content(format_message(event))
        try:
            client = self._client(await self._usable_connection(endpoint.connection_id))
            async with asyncio.timeout(self.timeout):
                matrix_event_id = await client.send_event(
                    room_id, "m.room.message", transaction_id(event.id), content
                )
        except _Unusable as exc:
            return result(None, str(exc))
        except TimeoutError:
            return result(
                None, f"timed out after {self.timeout:g} s sending to {room_id} as connection {connection_id}"
            )
        except RetryableError as exc:
            return result(exc.status_code, _describe(exc, connection_id), exc.retry_after)
        except ConnectorError as exc:
            return result(exc.status_code, _describe(exc, connection_id))

        logger.debug(
            "webhook.matrix.sent endpoint_id=%s event_id=%s room_id=%s matrix_event_id=%s",
            endpoint.id,
            event.id,
            room_id,
            matrix_event_id,
        )
        return result(SENT_STATUS_CODE, None)

    async def check_room(self, connection_id: str, room_id: str) -> None:
        """Check live that ``connection_id`` is an active Matrix connection whose account joined ``room_id``.

        Raises ``InvalidEndpoint`` naming the field at fault, or
        ``RoomCheckUnavailable`` when the homeserver failed or timed out.
        """
        async with self._db.read() as db:
            connection = await get_connection(db, connection_id)
        _check_connection(connection, connection_id)
        assert connection is not None
        try:
            client = self._client(connection)
            async with asyncio.timeout(self.timeout):
                joined = await client.joined_rooms()
        except _Unusable as exc:
            raise InvalidEndpoint(str(exc), "connection_id") from exc
        except TimeoutError as exc:
            raise RoomCheckUnavailable(
                f"the homeserver of connection {connection_id} did not list its rooms within "
                f"{self.timeout:g} s; try again later"
            ) from exc
        except RetryableError as exc:
            raise RoomCheckUnavailable(
                f"the homeserver of connection {connection_id} could not list its rooms: {exc}; "
                "try again later"
            ) from exc
        except ConnectorError as exc:
            raise InvalidEndpoint(
                f"the homeserver of connection {connection_id} rejected the request for its rooms "
                f"({exc.reason_code}): {exc}",
                "connection_id",
            ) from exc
        if room_id not in joined:
            raise InvalidEndpoint(
                f"the account of connection {connection_id} has not joined room {room_id}; "
                "invite the account and join the room with it, or give a room it has joined",
                "room_id",
            )

    async def _usable_connection(self, connection_id: str | None) -> ConnectionRow:
        """Load the connection an endpoint posts through, or raise ``_Unusable`` when it cannot post now."""
        if connection_id is None:
            raise _Unusable("the endpoint names no Matrix connection; create it again with a connection_id")
        async with self._db.read() as db:
            connection = await get_connection(db, connection_id)
        if connection is None:
            raise _Unusable(
                f"connection {connection_id} not found; delete this endpoint and create one "
                "with another Matrix connection"
            )
        if connection.integration != MATRIX_INTEGRATION:
            raise _Unusable(
                f"connection {connection_id} is a {connection.integration} connection, not Matrix"
            )
        if connection.status in _UNUSABLE_STATUSES:
            action = (
                "enable it again" if connection.status == "disabled" else "reconnect it with new credentials"
            )
            raise _Unusable(f"connection {connection_id} is {connection.status}; {action}")
        return connection

    def _client(self, connection: ConnectionRow) -> MatrixClient:
        """Build a client from the stored credentials, or raise ``_Unusable`` if they cannot be decrypted."""
        connection_id = connection.id
        try:
            credentials = self._credentials.decrypt(connection.credentials)
        except SecretKeyError as exc:
            raise _Unusable(f"connection {connection_id}: {exc}") from exc

        async def save(values: Mapping[str, str]) -> None:
            await self._save_credentials(connection_id, values)

        return MatrixClient(self._http_client(), credentials, save)

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = self._http_factory()
        return self._http

    async def _save_credentials(self, connection_id: str, values: Mapping[str, str]) -> None:
        """Store credentials the client renewed (a refreshed token, a new login) before it uses them."""
        async with self._db.write() as db:
            connection = await get_connection(db, connection_id)
            if connection is None:
                return
            merged = {**self._credentials.decrypt(connection.credentials), **values}
            await update_connection(db, connection_id, credentials=self._credentials.encrypt(merged))
        logger.info("webhook.matrix.credentials_saved connection_id=%s", connection_id)


def _describe(error: ConnectorError, connection_id: str) -> str:
    """Describe a failed send with its reason code first, so a shortened message keeps it."""
    return f"{error.reason_code} on connection {connection_id}: {error}"


def _check_connection(connection: ConnectionRow | None, connection_id: str) -> None:
    if connection is None:
        raise InvalidEndpoint(f"connection {connection_id} not found", "connection_id")
    if connection.integration != MATRIX_INTEGRATION:
        raise InvalidEndpoint(
            f"connection {connection_id} is a {connection.integration} connection; "
            "a matrix endpoint posts through a Matrix connection",
            "connection_id",
        )
    if connection.status != "active":
        raise InvalidEndpoint(
            f"connection {connection_id} is {connection.status}; only an active Matrix connection can post",
            "connection_id",
        )


# Creating endpoints


async def create_matrix_endpoint(
    db: Database,
    target: MatrixTarget,
    *,
    connection_id: str | None,
    room_id: str | None,
    event_types: Sequence[str],
    description: str | None,
    now: datetime,
) -> EndpointRow:
    """Check and store an endpoint that posts its events to a Matrix room.

    The connection must be an active Matrix connection, and its account must
    have joined the room, which is checked live with the homeserver. Raises
    ``InvalidEndpoint`` naming the field, or ``RoomCheckUnavailable``.
    """
    types = validate_event_types(event_types)
    validate_description(description)
    if connection_id is None:
        raise InvalidEndpoint(
            "connection_id is missing; give the Matrix connection that posts the messages", "connection_id"
        )
    room = validate_room_id(room_id)
    await target.check_room(connection_id, room)
    async with db.write() as connection:
        endpoint = await insert_endpoint(
            connection,
            url=matrix_uri(room),
            event_types=types,
            connection_id=connection_id,
            description=description,
            secret=b"",
            now=now,
            kind="matrix",
            room_id=room,
        )
    logger.info(
        "webhook.endpoint.created endpoint_id=%s kind=matrix connection_id=%s room_id=%s",
        endpoint.id,
        connection_id,
        room,
    )
    return endpoint
