"""``M_LIMIT_EXCEEDED`` from Synapse's default message limit (0.2 per second, burst of 10)."""

from __future__ import annotations

import logging

import pytest

from interlink.connectors.base import ConnectorContext
from interlink.connectors.http import create_client
from interlink.connectors.matrix.connector import MatrixConnector, MessageWriter
from interlink.model import Ref
from tests.matrix.conftest import fresh_user
from tests.support.synapse import SynapseServer

# Creating the room takes one action of the burst of 10, so the tenth message
# exceeds the burst and waits about 5 s once.
MESSAGES = 10


async def test_rate_limited_send_waits_and_succeeds(
    synapse: SynapseServer, caplog: pytest.LogCaptureFixture
) -> None:
    mia = await fresh_user(synapse, "mia", rate_limited=True)
    room = await mia.create_room("Rate limited")

    async def save(values: object) -> None:
        return None

    caplog.set_level(logging.WARNING, logger="interlink.connectors.http")
    async with create_client() as http:
        context = ConnectorContext(
            connection_id="con_rate_limit",
            auth_scheme="access_token",
            credentials={"homeserver_url": synapse.url, "access_token": mia.access_token},
            http=http,
            save_credentials=save,
        )
        writer = MatrixConnector(context).writer("message")
        assert isinstance(writer, MessageWriter)
        sent = []
        for number in range(MESSAGES):
            record = await writer.create(
                {"conversation": Ref(id="cnv_x", remote_id=room), "body": f"reading {number}"},
                idempotency_key=f"reading-{number}",
            )
            sent.append(record.remote_id)

    retries = [entry for entry in caplog.records if entry.getMessage().startswith("http.retry")]
    assert retries, "Synapse never answered M_LIMIT_EXCEEDED; the test did not reach the limit"
    assert all("error=RateLimited" in entry.getMessage() for entry in retries)
    assert len(set(sent)) == MESSAGES
    bodies = [event["content"]["body"] for event in await mia.room_events(room)]
    assert sorted(bodies) == sorted(f"reading {number}" for number in range(MESSAGES))
