"""The event log API, and the events the rest of Interlink writes to the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from interlink.runtime import Runtime
from interlink.store.connections import delete_connection
from interlink.store.events import EVENT_TYPES, list_events
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from interlink.webhooks.endpoints import change_endpoint
from interlink.webhooks.urls import UrlGuard
from tests.support.memory_source import MemorySource, lookup_for, memory_integration
from tests.webhooks.conftest import Api
from tests.webhooks.support import emit, make_endpoint

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def page(api: Api, query: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    response = await api.client.get(f"/v1/events{query}", headers=headers or api.operator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def ids(body: dict[str, object]) -> list[str]:
    data = body["data"]
    assert isinstance(data, list)
    return [row["id"] for row in data]


async def test_events_page_in_commit_order(api: Api, runtime: Runtime) -> None:
    written = [await emit(runtime, data={"number": number}) for number in range(5)]

    first = await page(api, "?page_size=2")
    second = await page(api, f"?page_size=2&cursor={first['next_cursor']}")
    third = await page(api, f"?page_size=2&cursor={second['next_cursor']}")

    assert ids(first) + ids(second) + ids(third) == written
    assert first["has_more"] is True
    assert second["has_more"] is True
    assert third["has_more"] is False


async def test_kept_cursor_sees_only_later_events(api: Api, runtime: Runtime) -> None:
    await emit(runtime)
    caught_up = await page(api, "")
    later = [await emit(runtime), await emit(runtime)]

    again = await page(api, f"?cursor={caught_up['next_cursor']}")

    assert ids(again) == later
    assert ids(await page(api, f"?cursor={again['next_cursor']}")) == []


async def test_event_fields(api: Api, runtime: Runtime) -> None:
    event_id = await emit(runtime, "sync.failed", {"run_id": "run_3", "error": "timed out"}, "con_1")
    events = (await page(api, ""))["data"]
    assert isinstance(events, list)
    (event,) = events
    assert event["id"] == event_id
    assert event["type"] == "sync.failed"
    assert event["connection_id"] == "con_1"
    assert event["data"] == {"run_id": "run_3", "error": "timed out"}
    assert event["created_at"]
    single = await api.client.get(f"/v1/events/{event_id}", headers=api.operator)
    assert single.json()["id"] == event_id


async def test_type_filter(api: Api, runtime: Runtime) -> None:
    await emit(runtime, "sync.started")
    failed = await emit(runtime, "sync.failed")
    assert ids(await page(api, "?type=sync.failed")) == [failed]


async def test_unknown_type_rejected(api: Api) -> None:
    response = await api.client.get("/v1/events?type=sync.exploded", headers=api.operator)
    assert response.status_code == 422
    assert "sync.completed" in response.json()["detail"]


async def test_connection_filter(api: Api, runtime: Runtime) -> None:
    mine = await emit(runtime, connection_id="con_a")
    await emit(runtime, connection_id="con_b")
    assert ids(await page(api, "?connection_id=con_a")) == [mine]


async def test_cursor_bound_to_filters(api: Api, runtime: Runtime) -> None:
    await emit(runtime, "sync.failed")
    body = await page(api, "?type=sync.failed")
    response = await api.client.get(
        f"/v1/events?type=sync.started&cursor={body['next_cursor']}", headers=api.operator
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-cursor")


async def test_connection_token_sees_own_events(api: Api, runtime: Runtime, connection_id: str) -> None:
    headers = await api.connection_headers(runtime, connection_id)
    own = await emit(runtime, connection_id=connection_id)
    other = await emit(runtime, connection_id="con_other")
    await emit(runtime)

    visible = ids(await page(api, "", headers))

    assert own in visible
    assert other not in visible
    rows = (await page(api, "", headers))["data"]
    assert isinstance(rows, list)
    assert {row["connection_id"] for row in rows} == {connection_id}
    forbidden = await api.client.get("/v1/events?connection_id=con_other", headers=headers)
    assert forbidden.status_code == 403
    hidden = await api.client.get(f"/v1/events/{other}", headers=headers)
    assert hidden.status_code == 404


async def sync_once(runtime: Runtime, engine: SyncEngine, connection_id: str) -> None:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["vendor"],
        mode="incremental",
        trigger="manual",
        now=T0,
    )
    finished = await engine.execute_run(run.id)
    assert finished is not None


async def test_records_changed_cursor_reads_changes(api: Api, runtime: Runtime, connection_id: str) -> None:
    source = MemorySource()
    for number in range(6):
        source.put(f"v{number}", f"Vendor {number}", T0 - timedelta(days=2, minutes=number))
    engine = SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=lambda: T0,
        integration_lookup=lookup_for(memory_integration(source)),
    )
    await sync_once(runtime, engine, connection_id)
    source.put("v1", "Vendor 1 renamed", T0 - timedelta(hours=1))
    source.put("v4", "Vendor 4 renamed", T0 - timedelta(hours=1))
    source.put("v9", "Vendor 9", T0 - timedelta(minutes=30))
    await sync_once(runtime, engine, connection_id)

    changed = (await page(api, "?type=records.changed"))["data"]
    assert isinstance(changed, list)
    first, second = changed
    assert first["data"]["entities"]["vendor"]["count"] == 6
    summary = second["data"]["entities"]["vendor"]
    assert summary["count"] == 3
    assert summary["counts"] == {"created": 1, "updated": 2, "deleted": 0}

    response = await api.client.get(
        f"/v1/vendors?connection_id={connection_id}&include_deleted=true&cursor={summary['cursor']}",
        headers=api.operator,
    )
    assert response.status_code == 200, response.text
    assert sorted(record["remote_id"] for record in response.json()["data"]) == ["v1", "v4", "v9"]
    assert {record["name"] for record in response.json()["data"]} == {
        "Vendor 1 renamed",
        "Vendor 4 renamed",
        "Vendor 9",
    }


async def test_every_event_type_is_emitted(runtime: Runtime, guard: UrlGuard, connection_id: str) -> None:
    source = MemorySource()
    source.put("v1", "Vendor 1", T0 - timedelta(days=1))
    engine = SyncEngine(
        runtime.db,
        runtime.credentials,
        clock=lambda: T0,
        integration_lookup=lookup_for(memory_integration(source)),
    )
    await sync_once(runtime, engine, connection_id)
    source.password = "rotated-password"
    await sync_once(runtime, engine, connection_id)
    endpoint, _ = await make_endpoint(runtime, guard, "https://127.0.0.1:9/hook")
    await change_endpoint(runtime.db, endpoint.id, guard=guard, now=T0, status="disabled")
    async with runtime.db.write() as db:
        assert await delete_connection(db, connection_id)

    async with runtime.db.read() as db:
        events = await list_events(db, after=None, limit=1000)

    assert {event.type for event in events} == set(EVENT_TYPES)
