"""The HTTP API over records synced from a real Tryton: paging, tokens, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from interlink.crypto import generate_token, hash_token
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from interlink.sync.requests import request_syncs
from tests.support.tryton_fixtures import TrytonDatabase, acquire

pytestmark = pytest.mark.tryton


@pytest.fixture
async def operator_key(runtime: Runtime) -> str:
    key = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(db, name="tests", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None)
    return key


@pytest.fixture
async def api(runtime: Runtime, operator_key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=runtime.app())
    headers = {"Authorization": f"Bearer {operator_key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://interlink.test", headers=headers
    ) as client:
        yield client


async def create_connection(
    api: httpx.AsyncClient, tryton: TrytonDatabase, end_user: str = "acme"
) -> dict[str, Any]:
    response = await api.post(
        "/v1/connections",
        json={
            "integration": "tryton",
            "end_user": {"id": end_user},
            "credentials": tryton.password_credentials(),
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def sync_all(runtime: Runtime, connection_id: str, entity: str = "purchase_order") -> None:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode="full",
        trigger="api",
        now=runtime.clock(),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    assert finished.status == "succeeded", finished.error


async def test_connection_create_returns_token_once(api: httpx.AsyncClient, tryton: TrytonDatabase) -> None:
    created = await create_connection(api, tryton)
    assert created["connection_token"].startswith("ilc_")
    assert created["status"] == "active"
    assert tryton.server.admin_password not in str(created)

    fetched = (await api.get(f"/v1/connections/{created['id']}")).json()
    assert fetched["connection_token"] is None
    assert tryton.server.admin_password not in str(fetched)


async def test_purchase_orders_listed_in_unified_shape(
    api: httpx.AsyncClient, runtime: Runtime, tryton: TrytonDatabase
) -> None:
    connection = await create_connection(api, tryton)
    await sync_all(runtime, connection["id"])

    response = await api.get("/v1/purchase-orders", params={"page_size": 5, "include_remote_data": "true"})

    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 5
    assert body["has_more"] is True
    order = body["data"][0]
    assert order["id"].startswith("po_")
    assert order["integration"] == "tryton"
    assert order["connection_id"] == connection["id"]
    assert order["created_at"].endswith("Z")
    assert isinstance(order["remote_data"], dict)
    Decimal(order["total_gross"])
    one = await api.get(f"/v1/purchase-orders/{order['id']}")
    assert one.json()["id"] == order["id"]


async def test_paging_sees_every_record_once_during_changes(
    api: httpx.AsyncClient, runtime: Runtime, tryton: TrytonDatabase
) -> None:
    connection = await create_connection(api, tryton)
    await sync_all(runtime, connection["id"])
    admin = tryton.admin()
    purchase_ids = admin.list_ids("purchase.purchase")

    seen: list[str] = []
    changed = iter(purchase_ids[:6])
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"page_size": 4}
        if cursor:
            params["cursor"] = cursor
        body = (await api.get("/v1/purchase-orders", params=params)).json()
        seen.extend(order["remote_id"] for order in body["data"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
        # Between pages, a purchase already read changes in Tryton and is synced again.
        purchase = next(changed, None)
        if purchase is not None:
            admin.set_purchase_field(purchase, "reference", f"REF-CHANGED-{purchase}")
            await sync_all(runtime, connection["id"])

    # Every record appears; records that changed after being read appear again, later,
    # because the list is in commit order: a client keeping its cursor misses nothing.
    assert set(seen) == {str(i) for i in purchase_ids}
    first_reads = {}
    for position, remote_id in enumerate(seen):
        first_reads.setdefault(remote_id, position)
    repeats = [remote_id for position, remote_id in enumerate(seen) if first_reads[remote_id] != position]
    assert len(repeats) == len(set(repeats))  # a change is delivered once, not more

    tail = (await api.get("/v1/purchase-orders", params={"cursor": cursor})).json()
    assert tail["data"] == []
    assert tail["has_more"] is False


async def test_connection_token_sees_only_its_connection(
    api: httpx.AsyncClient, runtime: Runtime, tryton_server: Any
) -> None:
    first_db = acquire(tryton_server)
    second_db = acquire(tryton_server)
    first = await create_connection(api, first_db, end_user="first")
    second = await create_connection(api, second_db, end_user="second")
    await sync_all(runtime, first["id"])
    await sync_all(runtime, second["id"])
    token = {"Authorization": f"Bearer {first['connection_token']}"}

    own = (await api.get("/v1/purchase-orders", headers=token, params={"page_size": 1000})).json()
    assert {order["connection_id"] for order in own["data"]} == {first["id"]}
    other_list = await api.get("/v1/purchase-orders", headers=token, params={"connection_id": second["id"]})
    assert other_list.status_code == 403
    other_order = (await api.get("/v1/purchase-orders", params={"connection_id": second["id"]})).json()[
        "data"
    ][0]
    assert (await api.get(f"/v1/purchase-orders/{other_order['id']}", headers=token)).status_code == 404
    assert (await api.get(f"/v1/connections/{second['id']}/syncs", headers=token)).status_code == 404
    assert (await api.get("/v1/connections", headers=token)).status_code == 403
    assert (await api.get("/v1/connection", headers=token)).json()["id"] == first["id"]


async def test_new_token_revokes_the_old(api: httpx.AsyncClient, tryton: TrytonDatabase) -> None:
    connection = await create_connection(api, tryton)
    old = {"Authorization": f"Bearer {connection['connection_token']}"}
    assert (await api.get("/v1/connection", headers=old)).status_code == 200

    renewed = (await api.post(f"/v1/connections/{connection['id']}/tokens")).json()

    assert (await api.get("/v1/connection", headers=old)).status_code == 401
    new = {"Authorization": f"Bearer {renewed['connection_token']}"}
    assert (await api.get("/v1/connection", headers=new)).status_code == 200


async def test_bad_input_answers_field_errors(api: httpx.AsyncClient, tryton: TrytonDatabase) -> None:
    response = await api.post("/v1/connections", json={"integration": "tryton", "end_user": {}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert "end_user.id" in fields
    assert "credentials" in fields

    missing = {k: v for k, v in tryton.password_credentials().items() if k != "database"}
    response = await api.post(
        "/v1/connections",
        json={
            "integration": "tryton",
            "end_user": {"id": "x"},
            "credentials": missing,
            "auth_scheme": "password",
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "credentials.database"

    wrong = {**tryton.password_credentials(), "password": "wrong-password!"}
    response = await api.post(
        "/v1/connections", json={"integration": "tryton", "end_user": {"id": "x"}, "credentials": wrong}
    )
    assert response.status_code == 422
    assert "rejected the credentials" in response.json()["detail"]
    assert "wrong-password!" not in response.text
    assert (await api.get("/v1/connections")).json()["data"] == []


async def test_unknown_entity_and_bad_cursor(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/v1/purchase-ordres")
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/not-found")

    malformed = await api.get("/v1/purchase-orders", params={"cursor": "not-a-cursor"})
    assert malformed.status_code == 400
    assert "malformed" in malformed.json()["detail"]

    first = (await api.get("/v1/purchase-orders", params={"include_deleted": "true"})).json()
    mismatched = await api.get("/v1/purchase-orders", params={"cursor": first["next_cursor"]})
    assert mismatched.status_code == 400
    assert "other filters" in mismatched.json()["detail"]

    assert (await api.get("/v1/purchase-orders", params={"page_size": 0})).status_code == 422
    assert (await api.delete("/v1/purchase-orders")).status_code == 405


async def test_requests_need_a_valid_token(runtime: Runtime) -> None:
    transport = httpx.ASGITransport(app=runtime.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
        missing = await client.get("/v1/purchase-orders")
        wrong = await client.get("/v1/purchase-orders", headers={"Authorization": "Bearer ilk_nope"})
        health = await client.get("/healthz", headers={"X-Request-ID": "req-123"})
        ready = await client.get("/readyz")
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert health.status_code == 200
    assert health.headers["X-Request-ID"] == "req-123"
    assert ready.status_code == 200
    assert missing.headers["X-Request-ID"]


async def test_schemas_are_served(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/v1/schemas/purchase_order")).json()
    assert schema["properties"]["total_net"]["anyOf"][0]["type"] == "string"
    assert (await api.get("/v1/schemas/work-orders")).status_code == 200
    assert (await api.get("/v1/schemas/invoices")).status_code == 404


async def test_patch_settings_and_delete(
    api: httpx.AsyncClient, runtime: Runtime, tryton: TrytonDatabase
) -> None:
    connection = await create_connection(api, tryton)
    await sync_all(runtime, connection["id"])

    patched = await api.patch(
        f"/v1/connections/{connection['id']}", json={"sync_frequency": "PT15M", "history_days": 30}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["sync_frequency"] == "PT15M"
    assert patched.json()["settings"]["history_days"] == 30
    too_often = await api.patch(f"/v1/connections/{connection['id']}", json={"sync_frequency": "PT1M"})
    assert too_often.status_code == 422
    bad_entity = await api.patch(f"/v1/connections/{connection['id']}", json={"entities": ["invoice"]})
    assert bad_entity.status_code == 422

    assert (await api.delete(f"/v1/connections/{connection['id']}")).status_code == 204
    assert (await api.get(f"/v1/connections/{connection['id']}")).status_code == 404
    assert (await api.get("/v1/purchase-orders")).json()["data"] == []


async def test_sync_trigger_and_run_listing(
    api: httpx.AsyncClient, runtime: Runtime, tryton: TrytonDatabase
) -> None:
    connection = await create_connection(api, tryton)
    triggered = await api.post(
        f"/v1/connections/{connection['id']}/syncs", json={"entities": ["vendor"], "mode": "full"}
    )
    assert triggered.status_code == 202
    (run,) = triggered.json()["data"]
    assert run["status"] == "queued"
    await runtime.engine.execute_run(run["id"])

    runs = (await api.get(f"/v1/connections/{connection['id']}/syncs")).json()["data"]
    assert runs[0]["id"] == run["id"]
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["counts"]["created"] > 0
    bad = await api.post(f"/v1/connections/{connection['id']}/syncs", json={"entities": ["message"]})
    assert bad.status_code == 422
    integrations = (await api.get("/v1/integrations")).json()["data"]
    assert "tryton" in {integration["name"] for integration in integrations}
