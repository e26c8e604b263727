"""The Business Central connector against its sandbox, driven through the sync engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from interlink.connectors.dynamics_bc import use_tuning
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs
from tests.sandboxes.conftest import MovableClock
from tests.sandboxes.dynamics_bc.conftest import (
    FAST_TUNING,
    BusinessCentral,
    connect,
    connection_status,
    stored,
    sync,
)

ENTITIES = ("vendor", "part", "location", "purchase_order")


async def test_full_sync_reads_every_entity(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    expected = {
        "vendor": len(bc_sandbox.api("vendors")["value"]),
        "part": len(bc_sandbox.api("items")["value"]),
        "location": len(bc_sandbox.api("locations")["value"]),
        "purchase_order": len(bc_sandbox.api("purchaseOrders")["value"]),
    }
    for entity in ENTITIES:
        run = await sync(runtime, bc_connection, entity, mode="full")
        assert run.status == "succeeded", run.error
        assert run.counts["created"] == expected[entity]
        assert len(await stored(runtime, bc_connection, entity)) == expected[entity]


async def test_purchase_order_keeps_lines_and_exact_decimals(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    await sync(runtime, bc_connection, "purchase_order", mode="full")
    order = bc_sandbox.api("purchaseOrders", **{"$expand": "purchaseOrderLines", "$top": "1"})["value"][0]
    record = (await stored(runtime, bc_connection, "purchase_order"))[order["id"]]
    assert record.data["number"] == order["number"]
    assert len(record.data["lines"]) == len(order["purchaseOrderLines"])
    first = order["purchaseOrderLines"][0]
    assert Decimal(record.data["lines"][0]["unit_price"]) == Decimal(str(first["directUnitCost"]))
    assert record.data["vendor"]["remote_id"] == order["vendorId"]


async def test_incremental_reads_header_change(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    await sync(runtime, bc_connection, "purchase_order")
    order = bc_sandbox.api("purchaseOrders", **{"$top": "1"})["value"][0]
    bc_sandbox.change("purchaseOrders", order["id"], requestedReceiptDate="2031-02-03")
    run = await sync(runtime, bc_connection, "purchase_order")
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    record = (await stored(runtime, bc_connection, "purchase_order"))[order["id"]]
    assert record.data["expected_delivery_date"] == "2031-02-03"


async def test_line_only_change_waits_for_sweep(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    clock = MovableClock()
    use_tuning(replace(FAST_TUNING, clock=clock))
    first = await sync(runtime, bc_connection, "purchase_order")  # sweeps: no digests yet
    assert first.status == "succeeded", first.error
    order = bc_sandbox.api("purchaseOrders", **{"$expand": "purchaseOrderLines", "$top": "1"})["value"][0]
    line = order["purchaseOrderLines"][0]
    bc_sandbox.change("purchaseOrderLines", line["id"], quantity=987)
    after = bc_sandbox.api(f"purchaseOrders({order['id']})")
    assert after["lastModifiedDateTime"] == order["lastModifiedDateTime"]  # the trap is armed

    clock.advance(FAST_TUNING.line_sweep_interval - timedelta(seconds=1))
    early = await sync(runtime, bc_connection, "purchase_order")
    assert early.status == "succeeded", early.error
    assert early.counts["updated"] == 0  # no sweep yet: the header did not move

    clock.advance(timedelta(seconds=1))
    run = await sync(runtime, bc_connection, "purchase_order")
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    record = (await stored(runtime, bc_connection, "purchase_order"))[order["id"]]
    changed = next(item for item in record.data["lines"] if item["remote_id"] == line["id"])
    assert Decimal(changed["quantity"]) == Decimal(987)

    clock.advance(timedelta(minutes=5))
    bc_sandbox.change("purchaseOrderLines", line["id"], quantity=988)
    full = await sync(runtime, bc_connection, "purchase_order", mode="full")
    assert full.counts["updated"] == 1  # a full read reads every line, sweep or not


async def test_incremental_without_changes_updates_nothing(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    await sync(runtime, bc_connection, "purchase_order")
    run = await sync(runtime, bc_connection, "purchase_order")
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 0
    assert run.counts["created"] == 0


async def test_incremental_reads_new_record(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    await sync(runtime, bc_connection, "vendor")
    added = bc_sandbox.add("vendors", displayName="O'Brien / Sons")
    run = await sync(runtime, bc_connection, "vendor")
    assert run.counts["created"] == 1
    assert (await stored(runtime, bc_connection, "vendor"))[added["id"]].data["name"] == "O'Brien / Sons"


async def test_full_sync_marks_deleted_records(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    await sync(runtime, bc_connection, "vendor", mode="full")
    victim = bc_sandbox.api("vendors", **{"$top": "1"})["value"][0]
    bc_sandbox.delete("vendors", victim["id"])
    run = await sync(runtime, bc_connection, "vendor", mode="full")
    assert run.status == "succeeded", run.error
    assert run.counts["deleted"] == 1
    assert (await stored(runtime, bc_connection, "vendor"))[victim["id"]].deleted


async def test_rate_limit_with_retry_after_recovers(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.arm(kind="status", status=429, retry_after="1", count=1, path_prefix="/v2.0/")
    run = await sync(runtime, bc_connection, "vendor")
    assert run.status == "succeeded", run.error


async def test_server_errors_recover(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.arm(kind="status", status=503, count=2, path_prefix="/v2.0/")
    run = await sync(runtime, bc_connection, "location")
    assert run.status == "succeeded", run.error


async def test_slow_answer_times_out_then_recovers(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.arm(kind="slow", delay=1.5, count=1, path_prefix="/v2.0/")
    run = await sync(runtime, bc_connection, "location")
    assert run.status == "succeeded", run.error


async def test_malformed_page_is_read_again(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.arm(kind="malformed", count=1, path_prefix="/v2.0/")
    run = await sync(runtime, bc_connection, "vendor", mode="full")
    assert run.status == "succeeded", run.error
    assert run.counts["created"] == len(bc_sandbox.api("vendors")["value"])


async def test_repeating_next_link_fails_with_reason(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.arm(kind="repeat_next", count=1, path_prefix="/v2.0/")
    run = await sync(runtime, bc_connection, "purchase_order", mode="full")
    assert run.status == "failed"
    assert run.error_code == "invalid_source_data"
    assert "@odata.nextLink" in (run.error or "")


async def test_expired_token_is_renewed(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.admin.post("/_sandbox/tokens/expire").raise_for_status()
    run = await sync(runtime, bc_connection, "vendor")
    assert run.status == "succeeded", run.error


async def test_rotated_secret_requires_reauthorization(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    bc_sandbox.admin.post("/_sandbox/credentials/rotate").raise_for_status()
    run = await sync(runtime, bc_connection, "vendor")
    assert run.status == "failed"
    assert await connection_status(runtime, bc_connection) == "reauthorization_required"


async def test_line_edit_during_full_read(
    runtime: Runtime, bc_sandbox: BusinessCentral, bc_connection: str
) -> None:
    clock = MovableClock()
    use_tuning(replace(FAST_TUNING, clock=clock))
    order = bc_sandbox.api("purchaseOrders", **{"$expand": "purchaseOrderLines", "$top": "1"})["value"][0]
    line = order["purchaseOrderLines"][0]
    edits: list[int] = []

    def change_line_after_first_page(run: RunRow, counts: Mapping[str, int]) -> None:
        if not edits:  # the first page, with the order in it, is stored now
            bc_sandbox.change("purchaseOrderLines", line["id"], quantity=321)
            edits.append(321)

    (queued,) = await request_syncs(
        runtime.db,
        None,
        connection_id=bc_connection,
        entities=["purchase_order"],
        mode="full",
        trigger="manual",
        now=datetime.now(UTC),
    )
    full = await runtime.engine.execute_run(queued.id, progress=change_line_after_first_page)
    assert full is not None
    assert full.status == "succeeded", full.error
    before = (await stored(runtime, bc_connection, "purchase_order"))[order["id"]]
    stale = next(item for item in before.data["lines"] if item["remote_id"] == line["id"])
    assert Decimal(stale["quantity"]) != Decimal(321)  # read before the edit

    clock.advance(FAST_TUNING.line_sweep_interval)
    run = await sync(runtime, bc_connection, "purchase_order")
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    after = (await stored(runtime, bc_connection, "purchase_order"))[order["id"]]
    changed = next(item for item in after.data["lines"] if item["remote_id"] == line["id"])
    assert Decimal(changed["quantity"]) == Decimal(321)


async def test_older_orders_make_full_read_sweep(runtime: Runtime, bc_sandbox: BusinessCentral) -> None:
    clock = MovableClock()
    use_tuning(replace(FAST_TUNING, clock=clock))
    connection_id = await connect(runtime, bc_sandbox, "customer-2", ConnectionSettings(history_days=30))
    orders = bc_sandbox.api("purchaseOrders")["value"]
    window_start = datetime.now(UTC) - timedelta(days=30)
    inside = {o["id"] for o in orders if datetime.fromisoformat(o["lastModifiedDateTime"]) >= window_start}
    assert 0 < len(inside) < len(orders)  # some orders lie before the window

    full = await sync(runtime, connection_id, "purchase_order", mode="full")
    assert full.status == "succeeded", full.error
    assert set(await stored(runtime, connection_id, "purchase_order")) == inside

    # The digests of the full read cover the older orders' lines too, so the next sweep
    # finds nothing to read again: older orders stay outside the store.
    clock.advance(FAST_TUNING.line_sweep_interval)
    swept = await sync(runtime, connection_id, "purchase_order")
    assert swept.status == "succeeded", swept.error
    assert swept.counts["created"] == 0
    assert set(await stored(runtime, connection_id, "purchase_order")) == inside
