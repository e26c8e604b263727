"""Syncing a real Tryton 8.2: full and incremental runs, crashes, deletions, lost credentials."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import interlink.connectors.tryton as tryton_integration
from interlink.connectors.tryton import connector as tryton_connector
from interlink.runtime import Runtime
from interlink.store.connections import get_connection
from interlink.store.records import RecordFilter, StoredRecord, list_records
from interlink.store.runs import RunRow
from interlink.sync.engine import SyncEngine
from interlink.sync.requests import request_syncs
from tests.support.tryton_admin import PurchaseLineInput
from tests.support.tryton_fixtures import TrytonDatabase, connect

pytestmark = pytest.mark.tryton

ENTITIES = ["purchase_order", "vendor", "part", "work_order", "location", "user"]


async def sync(runtime: Runtime, connection_id: str, entity: str, mode: str = "incremental") -> RunRow:
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=[entity],
        mode=mode,
        trigger="manual",
        now=runtime.clock(),
    )
    finished = await runtime.engine.execute_run(run.id)
    assert finished is not None
    return finished


async def records(
    runtime: Runtime, connection_id: str, entity: str, *, deleted: bool = False
) -> dict[str, StoredRecord]:
    async with runtime.db.read() as db:
        rows = await list_records(
            db,
            RecordFilter(entity=entity, connection_id=connection_id, include_deleted=deleted),
            after=None,
            limit=10_000,
        )
    return {row.remote_id: row for row in rows}


async def test_full_sync_reads_every_entity(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    admin = tryton.admin()
    expected_purchases = len(admin.list_ids("purchase.purchase"))

    for entity in ENTITIES:
        run = await sync(runtime, connection_id, entity, mode="full")
        assert run.status == "succeeded", (entity, run.error)
        assert run.counts["created"] > 0, entity

    purchases = await records(runtime, connection_id, "purchase_order")
    assert len(purchases) == expected_purchases
    vendors = await records(runtime, connection_id, "vendor")
    locations = await records(runtime, connection_id, "location")
    assert any(key.startswith("stock.location/") for key in locations)
    assert any(key.startswith("production.work.center/") for key in locations)
    assert "Interlink Demo Manufacturing GmbH" not in {row.data["name"] for row in vendors.values()}


async def test_purchase_order_maps_to_unified_shape(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    await sync(runtime, connection_id, "purchase_order", mode="full")
    admin = tryton.admin()
    (source,) = admin.read(
        "purchase.purchase", [2], ["number", "state", "total_amount", "untaxed_amount", "party"]
    )

    order = (await records(runtime, connection_id, "purchase_order"))["2"].data
    assert order["number"] == source["number"]
    assert order["remote_status"] == source["state"]
    assert order["total_gross"] == str(source["total_amount"])
    assert order["total_net"] == str(source["untaxed_amount"])
    assert order["vendor"]["remote_id"] == str(source["party"])
    assert order["currency"] == "EUR"
    assert order["lines"]
    for line in order["lines"]:
        assert isinstance(line["quantity"], str)
        Decimal(line["quantity"])  # a decimal string, never a float
        assert line["part"]["id"].startswith("prt_")


async def test_incremental_sees_header_change(
    runtime: Runtime, tryton: TrytonDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seed was written moments ago, so with the usual lookback every record is
    # "recent"; without it the read must be limited to what changed.
    monkeypatch.setattr(tryton_integration, "LOOKBACK", timedelta(0))
    connection_id = await connect(runtime, tryton.password_credentials())
    await sync(runtime, connection_id, "purchase_order")
    admin = tryton.admin()
    admin.set_purchase_field(5, "reference", "CHANGED-REF")
    admin.set_purchase_field(6, "comment", "Deliver to gate 3")

    run = await sync(runtime, connection_id, "purchase_order")

    assert run.counts["updated"] == 2  # the comment is mapped; the reference lives in the raw record
    assert run.counts["unchanged"] >= 1
    assert run.counts["fetched"] <= 3  # the two changes, and the newest record at the boundary
    order = (await records(runtime, connection_id, "purchase_order"))["6"]
    assert order.data["notes"] == "Deliver to gate 3"
    assert (await records(runtime, connection_id, "purchase_order"))["5"].raw["reference"] == "CHANGED-REF"


async def test_incremental_sees_line_only_change(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    await sync(runtime, connection_id, "purchase_order")
    admin = tryton.admin()
    draft = admin.list_ids("purchase.purchase", [["state", "=", "draft"]])[0]
    (purchase,) = admin.read("purchase.purchase", [draft], ["lines", "last_modified_at"])
    line_id = purchase["lines"][0]
    admin.set_purchase_line(line_id, unit_price=Decimal("123.4567"))
    (after,) = admin.read("purchase.purchase", [draft], ["last_modified_at"])
    assert after["last_modified_at"] == purchase["last_modified_at"]  # Tryton leaves the header alone

    run = await sync(runtime, connection_id, "purchase_order")

    assert run.counts["updated"] == 1
    order = (await records(runtime, connection_id, "purchase_order"))[str(draft)]
    prices = {line["remote_id"]: line["unit_price"] for line in order.data["lines"]}
    assert prices[str(line_id)] == "123.4567"


async def test_new_purchase_is_created_incrementally(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    await sync(runtime, connection_id, "purchase_order")
    admin = tryton.admin()
    product = admin.list_ids("product.product")[0]
    party = admin.list_ids("party.party")[-1]
    new_id = admin.create_purchase(
        party, [PurchaseLineInput(product, 3.0, Decimal("9.99"))], reference="NEW-1"
    )

    run = await sync(runtime, connection_id, "purchase_order")

    assert run.counts["created"] == 1
    assert str(new_id) in await records(runtime, connection_id, "purchase_order")


async def test_full_sync_finds_deleted_purchase(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    await sync(runtime, connection_id, "purchase_order", mode="full")
    admin = tryton.admin()
    draft = admin.list_ids("purchase.purchase", [["state", "=", "draft"]])[0]
    admin.delete_draft_purchase(draft)

    incremental = await sync(runtime, connection_id, "purchase_order")
    assert incremental.counts["deleted"] == 0  # no tombstones: only a full pass can tell
    full = await sync(runtime, connection_id, "purchase_order", mode="full")

    assert full.counts["deleted"] == 1
    stored = await records(runtime, connection_id, "purchase_order", deleted=True)
    assert stored[str(draft)].deleted is True
    assert str(draft) not in await records(runtime, connection_id, "purchase_order")


async def test_crash_between_pages_loses_nothing(
    runtime: Runtime, tryton: TrytonDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tryton_connector, "PAGE_SIZE", 7)
    connection_id = await connect(runtime, tryton.password_credentials())
    (run,) = await request_syncs(
        runtime.db,
        None,
        connection_id=connection_id,
        entities=["purchase_order"],
        mode="incremental",
        trigger="manual",
        now=runtime.clock(),
    )
    committed_pages = 0
    crash_after = 2

    def count_pages(current: RunRow, counts: object) -> None:
        nonlocal committed_pages
        committed_pages += 1
        if committed_pages == crash_after:
            raise asyncio.CancelledError  # the worker dies right after its second commit

    with pytest.raises(asyncio.CancelledError):
        await runtime.engine.execute_run(run.id, progress=count_pages)
    assert len(await records(runtime, connection_id, "purchase_order")) == 14

    later = datetime.now(UTC) + timedelta(minutes=5)  # the dead worker's lease has expired
    other = SyncEngine(runtime.db, runtime.credentials, clock=lambda: later, owner="second-worker")
    resumed = await other.execute_run(run.id)

    assert resumed is not None
    assert resumed.status == "succeeded"
    stored = await records(runtime, connection_id, "purchase_order")
    assert len(stored) == len(tryton.admin().list_ids("purchase.purchase"))
    assert resumed.counts["created"] == len(stored)  # each record created once, none twice


async def test_changed_password_requires_reauthorization(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.password_credentials())
    first = await sync(runtime, connection_id, "vendor")
    assert first.status == "succeeded"
    admin = tryton.admin()
    admin.change_password(admin.user_id, "a-brand-new-password")

    failed = await sync(runtime, connection_id, "vendor")

    assert failed.status == "failed"
    assert failed.error_code == "credentials_invalid"
    async with runtime.db.read() as db:
        connection = await get_connection(db, connection_id)
    assert connection is not None
    assert connection.status == "reauthorization_required"
    assert connection.status_reason == "credentials_invalid"
    skipped = await sync(runtime, connection_id, "vendor")
    assert skipped.error_code == "connection_reauthorization_required"


async def test_rest_application_key_syncs(runtime: Runtime, tryton: TrytonDatabase) -> None:
    connection_id = await connect(runtime, tryton.api_key_credentials())
    run = await sync(runtime, connection_id, "purchase_order", mode="full")
    assert run.status == "succeeded", run.error
    assert run.counts["created"] == len(tryton.admin().list_ids("purchase.purchase"))


async def test_rejected_credentials_store_nothing(runtime: Runtime, tryton: TrytonDatabase) -> None:
    from interlink.connections import InvalidConnectionInput

    credentials = {**tryton.password_credentials(), "password": "not-the-password"}
    with pytest.raises(InvalidConnectionInput, match="rejected the credentials"):
        await connect(runtime, credentials)
    async with runtime.db.read() as db:
        from interlink.store.connections import list_connections

        assert list(await list_connections(db, after_id=None, limit=10)) == []
