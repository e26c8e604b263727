"""Sessions against a real Synapse: password logins, soft logout, refresh, revoked tokens."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import httpx

from interlink.runtime import Runtime
from interlink.store.connections import ConnectionRow, get_connection
from interlink.store.events import list_events
from tests.matrix.conftest import connect, fresh_user, sync
from tests.support.synapse import MatrixUser, SynapseServer, login

_EXPIRY_POLLS = 100


async def stored_connection(runtime: Runtime, connection_id: str) -> ConnectionRow:
    async with runtime.db.read() as db:
        row = await get_connection(db, connection_id)
    assert row is not None
    return row


async def stored_credentials(runtime: Runtime, connection_id: str) -> dict[str, str]:
    return runtime.credentials.decrypt((await stored_connection(runtime, connection_id)).credentials)


async def wait_until_expired(url: str, access_token: str) -> None:
    """Poll ``/account/whoami`` until Synapse reports the token expired (a soft logout)."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        for _ in range(_EXPIRY_POLLS):
            response = await client.get(
                "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {access_token}"}
            )
            if response.status_code == 401:
                assert response.json()["soft_logout"] is True
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the access token did not expire within {_EXPIRY_POLLS * 0.1:.0f} s")


async def test_password_login_stores_session(runtime: Runtime, synapse: SynapseServer) -> None:
    grace = await fresh_user(synapse, "grace")
    connection_id = await connect(
        runtime, synapse.url, {"username": grace.localpart, "password": grace.password}
    )
    credentials = await stored_credentials(runtime, connection_id)
    assert credentials["access_token"]
    assert credentials["device_id"].startswith("INTERLINK_")

    run = await sync(runtime, connection_id, "conversation")
    assert run.status == "succeeded"
    assert (await stored_credentials(runtime, connection_id))["access_token"] == credentials["access_token"]


async def test_soft_logout_refreshes_token(runtime: Runtime, synapse: SynapseServer) -> None:
    heidi = await fresh_user(synapse, "heidi")
    await heidi.create_room("Boiler room")
    session = await login(synapse.url, heidi.localpart, heidi.password, refresh_token=True, full=True)
    connection_id = await connect(
        runtime,
        synapse.url,
        {"access_token": session["access_token"], "refresh_token": session["refresh_token"]},
    )
    await wait_until_expired(synapse.url, session["access_token"])

    run = await sync(runtime, connection_id, "conversation")
    assert run.status == "succeeded"
    credentials = await stored_credentials(runtime, connection_id)
    assert credentials["access_token"] != session["access_token"]
    assert credentials["refresh_token"] != session["refresh_token"]
    assert (await stored_connection(runtime, connection_id)).status == "active"


async def test_revoked_token_logs_in_again(runtime: Runtime, synapse: SynapseServer) -> None:
    ivan = await fresh_user(synapse, "ivan")
    connection_id = await connect(
        runtime, synapse.url, {"username": ivan.localpart, "password": ivan.password}
    )
    before = await stored_credentials(runtime, connection_id)
    await MatrixUser(synapse.url, ivan.user_id, before["access_token"]).logout()

    run = await sync(runtime, connection_id, "user")
    assert run.status == "succeeded"
    after = await stored_credentials(runtime, connection_id)
    assert after["access_token"] != before["access_token"]
    assert after["device_id"] == before["device_id"]


async def test_logout_requires_reauthorization(runtime: Runtime, synapse: SynapseServer) -> None:
    judy = await fresh_user(synapse, "judy")
    connection_id = await connect(runtime, synapse.url, {"access_token": judy.access_token})
    await judy.logout()

    failed = await sync(runtime, connection_id, "message")
    assert failed.status == "failed"
    assert failed.error_code == "token_revoked"
    connection = await stored_connection(runtime, connection_id)
    assert connection.status == "reauthorization_required"
    assert connection.status_reason == "token_revoked"

    again = await sync(runtime, connection_id, "conversation")
    assert again.error_code == "connection_reauthorization_required"
    assert again.counts["fetched"] == 0
    async with runtime.db.read() as db:
        required = await list_events(
            db, after=None, limit=100, event_type="connection.reauthorization_required"
        )
    assert [event.connection_id for event in required].count(connection_id) == 1


async def test_rejected_refresh_requires_reauthorization(runtime: Runtime, synapse: SynapseServer) -> None:
    kim = await fresh_user(synapse, "kim")
    session = await login(synapse.url, kim.localpart, kim.password, refresh_token=True, full=True)
    connection_id = await connect(
        runtime,
        synapse.url,
        {"access_token": session["access_token"], "refresh_token": session["refresh_token"]},
    )
    await MatrixUser(synapse.url, kim.user_id, session["access_token"]).logout()

    run = await sync(runtime, connection_id, "conversation")
    assert run.status == "failed"
    assert run.error_code == "token_revoked"
    assert (await stored_connection(runtime, connection_id)).status == "reauthorization_required"


async def test_changed_password_requires_reauthorization(runtime: Runtime, synapse: SynapseServer) -> None:
    leo = await fresh_user(synapse, "leo")
    connection_id = await connect(runtime, synapse.url, {"username": leo.localpart, "password": leo.password})
    await synapse.admin_request(
        "POST",
        f"/_synapse/admin/v1/reset_password/{quote(leo.user_id)}",
        {"new_password": "a-new-password", "logout_devices": True},
    )

    run = await sync(runtime, connection_id, "conversation")
    assert run.status == "failed"
    assert run.error_code == "credentials_invalid"
    connection = await stored_connection(runtime, connection_id)
    assert connection.status == "reauthorization_required"
    assert connection.status_reason == "credentials_invalid"
