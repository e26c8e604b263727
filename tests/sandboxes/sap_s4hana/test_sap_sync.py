"""The SAP S/4HANA connector against its sandbox over real HTTP, driven through the sync engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from interlink.connections import InvalidConnectionInput
from interlink.connectors.base import ConnectorContext, ReadWindow
from interlink.connectors.http import create_client
from interlink.connectors.sap_s4hana import SapOptions, build_integration
from interlink.model import ConnectionSettings, build_record_id
from interlink.runtime import Runtime
from tests.sandboxes.conftest import connection_status, stored, sync
from tests.sandboxes.sap_s4hana.conftest import SWEEP_INTERVAL, SapSandbox, connect

ENTITY_SETS = {
    "purchase_order": "A_PurchaseOrder",
    "work_order": "MaintenanceOrder",
    "part": "A_Product",
    "asset": "Equipment",
    "location": "FunctionalLocation",
}


async def test_full_sync_reads_every_entity(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    for entity, entity_set in ENTITY_SETS.items():
        run = await sync(runtime, sap_connection, entity, mode="full")
        assert run.status == "succeeded", run.error
        assert run.counts["created"] == len(sap_sandbox.records(entity_set)), entity
        assert run.counts["deleted"] == 0, entity

    run = await sync(runtime, sap_connection, "vendor", mode="full")
    suppliers = [row for row in sap_sandbox.records("A_BusinessPartner") if row["Supplier"]]
    assert run.status == "succeeded", run.error
    assert run.counts["created"] == len(suppliers)


async def test_purchase_order_keeps_items_and_decimals(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "purchase_order", mode="full")
    order = sap_sandbox.records("A_PurchaseOrder")[3]
    items = [
        row
        for row in sap_sandbox.records("A_PurchaseOrderItem")
        if row["PurchaseOrder"] == order["PurchaseOrder"]
    ]

    record = (await stored(runtime, sap_connection, "purchase_order"))[order["PurchaseOrder"]]
    lines = record.data["lines"]
    assert [line["remote_id"] for line in lines] == [item["PurchaseOrderItem"] for item in items]
    assert Decimal(lines[0]["quantity"]) == Decimal(items[0]["OrderQuantity"])
    expected_price = Decimal(items[0]["NetPriceAmount"]) / Decimal(items[0]["NetPriceQuantity"])
    assert Decimal(lines[0]["unit_price"]) == expected_price
    assert record.data["vendor"]["id"] == build_record_id(sap_connection, "vendor", order["Supplier"])
    assert lines[0]["part"]["remote_id"] == items[0]["Material"]
    assert record.remote_updated_at == datetime.fromisoformat(order["LastChangeDateTime"])
    assert record.raw is not None
    assert "__metadata" not in record.raw
    assert "__metadata" not in record.raw["to_PurchaseOrderItem"]["results"][0]


async def test_vendor_references_resolve(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "vendor", mode="full")
    await sync(runtime, sap_connection, "purchase_order", mode="full")

    vendors = await stored(runtime, sap_connection, "vendor")
    orders = await stored(runtime, sap_connection, "purchase_order")
    vendor_ids = {record.id for record in vendors.values()}
    partners = sap_sandbox.records("A_BusinessPartner")

    assert set(vendors) == {row["Supplier"] for row in partners}
    assert any(row["Supplier"] != row["BusinessPartner"] for row in partners)
    assert all(order.data["vendor"]["id"] in vendor_ids for order in orders.values())


async def test_incremental_reads_header_change(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    first = await sync(runtime, sap_connection, "purchase_order")
    assert first.status == "succeeded", first.error
    key = sap_sandbox.records("A_PurchaseOrder")[5]["PurchaseOrder"]
    sap_sandbox.change("A_PurchaseOrder", {"PurchaseOrder": key}, PaymentTerms="ZB30")

    run = await sync(runtime, sap_connection, "purchase_order")

    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    assert run.counts["created"] == 0
    assert run.counts["fetched"] < first.counts["fetched"]
    assert (await stored(runtime, sap_connection, "purchase_order"))[key].data["payment_terms"] == "ZB30"


async def test_item_change_waits_for_the_sweep(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "purchase_order", mode="full")
    item = sap_sandbox.records("A_PurchaseOrderItem")[0]
    key = {"PurchaseOrder": item["PurchaseOrder"], "PurchaseOrderItem": item["PurchaseOrderItem"]}
    sap_sandbox.change("A_PurchaseOrderItem", key, OrderQuantity="987.654")

    # The header's LastChangeDateTime did not move, so a plain incremental read misses the edit.
    before_sweep = await sync(runtime, sap_connection, "purchase_order")
    record = (await stored(runtime, sap_connection, "purchase_order"))[item["PurchaseOrder"]]
    assert before_sweep.counts["updated"] == 0
    assert Decimal(record.data["lines"][0]["quantity"]) == Decimal(item["OrderQuantity"])

    sap_sandbox.clock.advance(SWEEP_INTERVAL)
    swept = await sync(runtime, sap_connection, "purchase_order")
    record = (await stored(runtime, sap_connection, "purchase_order"))[item["PurchaseOrder"]]
    assert swept.status == "succeeded", swept.error
    assert swept.counts["updated"] == 1
    assert Decimal(record.data["lines"][0]["quantity"]) == Decimal("987.654")


async def test_operation_change_waits_for_the_sweep(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "work_order", mode="full")
    operation = sap_sandbox.records("MaintenanceOrderOperation")[0]
    key = {
        "MaintenanceOrder": operation["MaintenanceOrder"],
        "MaintenanceOrderOperation": operation["MaintenanceOrderOperation"],
        "MaintenanceOrderSubOperation": "",
    }
    sap_sandbox.change("MaintenanceOrderOperation", key, OperationDescription="Replace the coupling")

    before_sweep = await sync(runtime, sap_connection, "work_order")
    sap_sandbox.clock.advance(SWEEP_INTERVAL)
    swept = await sync(runtime, sap_connection, "work_order")

    record = (await stored(runtime, sap_connection, "work_order"))[operation["MaintenanceOrder"]]
    assert before_sweep.counts["updated"] == 0
    assert swept.counts["updated"] == 1
    assert record.data["tasks"][0]["description"] == "Replace the coupling"


async def test_vendor_change_found_by_local_date(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "vendor")
    never_changed = next(
        row for row in sap_sandbox.records("A_BusinessPartner") if row["LastChangeDate"] is None
    )
    key = {"BusinessPartner": never_changed["BusinessPartner"]}
    sap_sandbox.change("A_BusinessPartner", key, BusinessPartnerFullName="Renamed Supplier Ltd")

    run = await sync(runtime, sap_connection, "vendor")

    record = (await stored(runtime, sap_connection, "vendor"))[never_changed["Supplier"]]
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    assert record.data["name"] == "Renamed Supplier Ltd"
    assert record.remote_updated_at is None


async def test_full_sync_finds_deletions(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "purchase_order", mode="full")
    key = sap_sandbox.records("A_PurchaseOrder")[2]["PurchaseOrder"]
    sap_sandbox.delete("A_PurchaseOrder", {"PurchaseOrder": key})

    incremental = await sync(runtime, sap_connection, "purchase_order")
    assert incremental.counts["deleted"] == 0
    assert not (await stored(runtime, sap_connection, "purchase_order"))[key].deleted

    full = await sync(runtime, sap_connection, "purchase_order", mode="full")
    assert full.status == "succeeded", full.error
    assert full.counts["deleted"] == 1
    assert (await stored(runtime, sap_connection, "purchase_order"))[key].deleted


async def test_full_sync_reads_only_the_window(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_options: SapOptions
) -> None:
    connection = await connect(
        runtime, sap_sandbox.credentials, sap_options, ConnectionSettings(history_days=60)
    )
    start = datetime.now(UTC) - timedelta(days=60)
    in_window = {
        row["PurchaseOrder"]
        for row in sap_sandbox.records("A_PurchaseOrder")
        if datetime.fromisoformat(row["LastChangeDateTime"]) >= start
    }
    assert 0 < len(in_window) < len(sap_sandbox.records("A_PurchaseOrder"))

    run = await sync(runtime, connection, "purchase_order", mode="full")

    assert run.status == "succeeded", run.error
    assert set(await stored(runtime, connection, "purchase_order")) == in_window


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 429, "retry_after": "0"},
        {"kind": "status", "status": 503},
        {"kind": "malformed"},
        {"kind": "slow", "delay": 1.0},
    ],
    ids=["rate-limited", "unavailable", "malformed-page", "slow-answer"],
)
async def test_fault_is_retried(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str, fault: dict[str, object]
) -> None:
    runtime.engine.http_factory = lambda: create_client(timeout=httpx.Timeout(0.5))
    sap_sandbox.arm(**fault, path_prefix="/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/A_PurchaseOrder")

    run = await sync(runtime, sap_connection, "purchase_order", mode="full")

    assert run.status == "succeeded", run.error
    assert run.counts["created"] == len(sap_sandbox.records("A_PurchaseOrder"))


async def test_repeating_next_link_fails_the_run(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    sap_sandbox.arm(kind="repeat_next", path_prefix="/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV")

    run = await sync(runtime, sap_connection, "purchase_order", mode="full")

    assert run.status == "failed"
    assert run.error is not None
    assert "repeats a page already read" in run.error
    assert (await connection_status(runtime, sap_connection))[0] == "active"


async def test_persistent_outage_fails_with_reason(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    sap_sandbox.arm(
        kind="status", status=503, count=10, path_prefix="/sap/opu/odata/sap/API_MAINTENANCEORDER"
    )

    run = await sync(runtime, sap_connection, "work_order")

    assert run.status == "failed"
    assert run.error is not None
    assert "503" in run.error
    assert "retries exhausted" in run.error
    assert (await connection_status(runtime, sap_connection)) == ("degraded", "unreachable")


async def test_rotated_password_requires_reauthorization(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_connection: str
) -> None:
    await sync(runtime, sap_connection, "part")
    sap_sandbox.admin.post(
        "/_sandbox/credentials/rotate", json={"password": "Rotated-Secret-2"}
    ).raise_for_status()

    run = await sync(runtime, sap_connection, "part")

    assert run.status == "failed"
    assert (await connection_status(runtime, sap_connection)) == (
        "reauthorization_required",
        "credentials_invalid",
    )


async def test_unknown_client_is_rejected_at_connect(
    runtime: Runtime, sap_sandbox: SapSandbox, sap_options: SapOptions
) -> None:
    credentials = {**sap_sandbox.credentials, "sap_client": "200"}

    with pytest.raises(InvalidConnectionInput, match="401"):
        await connect(runtime, credentials, sap_options)


async def test_full_read_resumes_after_last_key(sap_sandbox: SapSandbox, sap_options: SapOptions) -> None:
    window = ReadWindow(mode="full", history_start=datetime.now(UTC) - timedelta(days=365))
    async with create_client() as http:
        context = ConnectorContext("con_resume", "basic", sap_sandbox.credentials, http, _ignore_credentials)
        reader = build_integration(sap_options).build(context).reader("purchase_order")
        pages = [page async for page in reader.read(None, window)]
        keys = [record.remote_id for page in pages for record in page.records]
        resumed = [page async for page in reader.read(pages[1].cursor, window)]

    resumed_keys = [record.remote_id for page in resumed for record in page.records]
    assert len(pages) > 2
    assert keys == sorted(keys)
    assert resumed_keys == keys[len(pages[0].records) + len(pages[1].records) :]
    assert resumed[-1].complete
    assert not pages[0].complete


async def _ignore_credentials(values: Mapping[str, str]) -> None:
    return None
