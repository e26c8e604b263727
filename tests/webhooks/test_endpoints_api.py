"""The webhook endpoint API: create, list, read, change, delete, rotate, the delivery log, redelivery."""

from __future__ import annotations

import base64
from datetime import timedelta

from standardwebhooks import Webhook

from interlink.runtime import Runtime
from interlink.webhooks.delivery import WebhookDeliverer
from tests.webhooks.conftest import Api
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import FakeClock, emit, queued_deliveries

URL = "https://127.0.0.1:9/hook"


async def create(api: Api, **body: object) -> dict[str, object]:
    response = await api.client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"], **body}, headers=api.operator
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert isinstance(created, dict)
    return created


async def test_create_returns_secret_once(api: Api) -> None:
    created = await create(api, description="orders")

    secret = str(created["secret"])
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["kind"] == "https"
    assert created["status"] == "enabled"
    assert created["description"] == "orders"
    fetched = (await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)).json()
    assert fetched["secret"] is None
    assert fetched["url"] == URL


async def test_create_for_connection(api: Api, connection_id: str) -> None:
    created = await create(api, connection_id=connection_id, event_types=["records.changed"])
    assert created["connection_id"] == connection_id
    assert created["event_types"] == ["records.changed"]


async def test_create_rejects_http_url(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://93.184.216.34/hook", "event_types": ["*"]},
        headers=api.operator,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "url"
    assert "https://" in response.json()["detail"]


async def test_create_rejects_metadata_address(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://169.254.169.254/latest/meta-data/", "event_types": ["*"]},
        headers=api.operator,
    )
    assert response.status_code == 422
    assert "cloud metadata" in response.json()["detail"]


async def test_create_rejects_unknown_event_type(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": ["sync.exploded"]}, headers=api.operator
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "event_types"
    assert "sync.completed" in response.json()["detail"]


async def test_create_rejects_empty_event_types(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": []}, headers=api.operator
    )
    assert response.status_code == 422


async def test_create_rejects_unknown_connection(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "event_types": ["*"], "connection_id": "con_missing"},
        headers=api.operator,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "connection_id"


async def test_matrix_kind_rejects_url_without_room(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "event_types": ["*"], "kind": "matrix"},
        headers=api.operator,
    )
    assert response.status_code == 422


async def test_connection_token_forbidden(api: Api, runtime: Runtime, connection_id: str) -> None:
    headers = await api.connection_headers(runtime, connection_id)
    created = await create(api)
    calls = [
        api.client.post("/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]}, headers=headers),
        api.client.get("/v1/webhook-endpoints", headers=headers),
        api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=headers),
        api.client.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=headers),
        api.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=headers),
    ]
    for call in calls:
        assert (await call).status_code == 403


async def test_missing_token_unauthorized(api: Api) -> None:
    assert (await api.client.get("/v1/webhook-endpoints")).status_code == 401


async def test_list_pages_through_endpoints(api: Api) -> None:
    ids = [(await create(api))["id"] for _ in range(3)]
    first = (await api.client.get("/v1/webhook-endpoints?page_size=2", headers=api.operator)).json()
    second = (
        await api.client.get(
            f"/v1/webhook-endpoints?page_size=2&cursor={first['next_cursor']}", headers=api.operator
        )
    ).json()
    assert [row["id"] for row in first["data"] + second["data"]] == ids
    assert first["has_more"] is True
    assert second["has_more"] is False
    assert all(row["secret"] is None for row in first["data"])


async def test_patch_changes_fields(api: Api) -> None:
    created = await create(api, description="old")
    response = await api.client.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"url": "https://127.0.0.2:9/new", "event_types": ["sync.failed"], "description": None},
        headers=api.operator,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["url"] == "https://127.0.0.2:9/new"
    assert changed["event_types"] == ["sync.failed"]
    assert changed["description"] is None


async def test_patch_rejects_bad_url(api: Api) -> None:
    created = await create(api)
    response = await api.client.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"url": "https://[::ffff:169.254.169.254]/"},
        headers=api.operator,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "url"


async def test_patch_disable_and_enable(api: Api, runtime: Runtime) -> None:
    created = await create(api)
    disabled = (
        await api.client.patch(
            f"/v1/webhook-endpoints/{created['id']}", json={"status": "disabled"}, headers=api.operator
        )
    ).json()
    assert disabled["status"] == "disabled"
    assert disabled["disabled_reason"] == "disabled_by_operator"
    events = (await api.client.get("/v1/events?type=webhook_endpoint.disabled", headers=api.operator)).json()
    assert [event["data"]["endpoint_id"] for event in events["data"]] == [created["id"]]

    enabled = (
        await api.client.patch(
            f"/v1/webhook-endpoints/{created['id']}", json={"status": "enabled"}, headers=api.operator
        )
    ).json()
    assert enabled["status"] == "enabled"
    assert enabled["disabled_reason"] is None


async def test_delete_endpoint(api: Api) -> None:
    created = await create(api)
    assert (
        await api.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)
    ).status_code == 204
    assert (
        await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)
    ).status_code == 404
    assert (
        await api.client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)
    ).status_code == 404


async def test_rotate_secret_returns_new_secret(api: Api, clock: FakeClock) -> None:
    created = await create(api)
    response = await api.client.post(
        f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=api.operator
    )
    assert response.status_code == 200
    rotated = response.json()
    assert str(rotated["secret"]).startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    fetched = (await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)).json()
    assert fetched["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    clock.advance(timedelta(hours=25))
    expired = (await api.client.get(f"/v1/webhook-endpoints/{created['id']}", headers=api.operator)).json()
    assert expired["previous_secret_expires_at"] is None


async def test_rotate_unknown_endpoint_not_found(api: Api) -> None:
    response = await api.client.post("/v1/webhook-endpoints/whe_missing/rotate-secret", headers=api.operator)
    assert response.status_code == 404


async def test_delivery_log_lists_attempts(
    api: Api, runtime: Runtime, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    created = await create(api, url=receiver.url())
    event_id = await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    receiver.answer(500)
    await deliverer.deliver(delivery.id)
    clock.advance(timedelta(seconds=10))
    await deliverer.deliver(delivery.id)

    response = await api.client.get(f"/v1/webhook-endpoints/{created['id']}/deliveries", headers=api.operator)

    assert response.status_code == 200
    newest, oldest = response.json()["data"]
    assert oldest["attempt"] == 1
    assert oldest["status_code"] == 500
    assert oldest["succeeded"] is False
    assert oldest["error"] == "HTTP 500"
    assert oldest["next_attempt_at"] is not None
    assert newest["attempt"] == 2
    assert newest["status_code"] == 200
    assert newest["succeeded"] is True
    assert newest["error"] is None
    assert newest["next_attempt_at"] is None
    assert newest["event_id"] == event_id
    assert newest["event_type"] == "sync.completed"
    assert newest["latency_ms"] >= 0


async def test_delivery_log_pages_toward_older(
    api: Api, runtime: Runtime, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    created = await create(api, url=receiver.url())
    for _ in range(3):
        await emit(runtime)
    for delivery in await queued_deliveries(runtime, clock):
        await deliverer.deliver(delivery.id)
    path = f"/v1/webhook-endpoints/{created['id']}/deliveries"

    first = (await api.client.get(f"{path}?page_size=2", headers=api.operator)).json()
    second = (
        await api.client.get(f"{path}?page_size=2&cursor={first['next_cursor']}", headers=api.operator)
    ).json()

    assert len(first["data"]) == 2
    assert first["has_more"] is True
    assert len(second["data"]) == 1
    assert second["has_more"] is False
    ids = [row["id"] for row in first["data"] + second["data"]]
    assert len(set(ids)) == 3
    other_filter = await api.client.get(
        f"{path}?event_id=evt_x&cursor={first['next_cursor']}", headers=api.operator
    )
    assert other_filter.status_code == 400


async def test_redeliver_sends_same_message_again(
    api: Api, runtime: Runtime, receiver: Receiver, deliverer: WebhookDeliverer, clock: FakeClock
) -> None:
    created = await create(api, url=receiver.url())
    event_id = await emit(runtime)
    (delivery,) = await queued_deliveries(runtime, clock)
    await deliverer.deliver(delivery.id)

    response = await api.client.post(
        f"/v1/events/{event_id}/redeliver", json={"endpoint_id": created["id"]}, headers=api.operator
    )
    assert response.status_code == 202, response.text
    (queued,) = response.json()["data"]
    assert queued["id"] == delivery.id
    assert queued["status"] == "pending"
    await deliverer.deliver(delivery.id)

    first, second = receiver.requests
    assert first.headers["webhook-id"] == event_id
    assert second.headers["webhook-id"] == event_id
    assert first.body == second.body
    Webhook(str(created["secret"])).verify(second.body, second.headers)


async def test_redeliver_to_every_subscribed_endpoint(api: Api, runtime: Runtime) -> None:
    everything = await create(api)
    syncs = await create(api, event_types=["sync.completed"])
    await create(api, event_types=["sync.failed"])
    event_id = await emit(runtime, "sync.completed")

    response = await api.client.post(f"/v1/events/{event_id}/redeliver", headers=api.operator)

    assert response.status_code == 202
    assert {row["endpoint_id"] for row in response.json()["data"]} == {everything["id"], syncs["id"]}


async def test_redeliver_rejects_unsubscribed_endpoint(api: Api, runtime: Runtime) -> None:
    failures = await create(api, event_types=["sync.failed"])
    event_id = await emit(runtime, "sync.completed")
    response = await api.client.post(
        f"/v1/events/{event_id}/redeliver", json={"endpoint_id": failures["id"]}, headers=api.operator
    )
    assert response.status_code == 409
    assert "does not subscribe" in response.json()["detail"]


async def test_redeliver_unknown_event_not_found(api: Api) -> None:
    response = await api.client.post("/v1/events/evt_missing/redeliver", headers=api.operator)
    assert response.status_code == 404


async def test_redeliver_needs_operator(api: Api, runtime: Runtime, connection_id: str) -> None:
    headers = await api.connection_headers(runtime, connection_id)
    event_id = await emit(runtime, connection_id=connection_id)
    response = await api.client.post(f"/v1/events/{event_id}/redeliver", headers=headers)
    assert response.status_code == 403
