"""The NetSuite connector against its sandbox, driven through the sync engine."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from interlink.connectors.http import RetryPolicy
from interlink.connectors.netsuite import use_tuning
from interlink.runtime import Runtime
from tests.sandboxes.dynamics_bc.conftest import connection_status, stored, sync
from tests.sandboxes.netsuite.conftest import FAST_TUNING, NetSuite, connect, open_sandbox

RECORD_TYPES = {
    "vendor": "vendor",
    "part": "inventoryItem",
    "location": "location",
    "purchase_order": "purchaseOrder",
}


async def test_full_sync_reads_every_entity(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    for entity, record_type in RECORD_TYPES.items():
        run = await sync(runtime, ns_connection, entity, mode="full")
        assert run.status == "succeeded", run.error
        assert run.counts["created"] == len(ns_sandbox.ids(record_type))


async def test_purchase_order_keeps_lines_and_decimals(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    await sync(runtime, ns_connection, "purchase_order", mode="full")
    order_id = ns_sandbox.ids("purchaseOrder")[0]
    order = ns_sandbox.signed_get(
        f"/services/rest/record/v1/purchaseOrder/{order_id}", expandSubResources="true"
    )
    lines = order.json()["item"]["items"]
    record = (await stored(runtime, ns_connection, "purchase_order"))[order_id]
    assert len(record.data["lines"]) == len(lines)
    assert record.data["lines"][0]["remote_id"] == f"{order_id}/{lines[0]['line']}"
    assert Decimal(record.data["total_gross"]) == Decimal(order.text.split('"total":')[1].split(",")[0])
    assert "links" not in (record.raw or {})


async def test_incremental_reads_line_change(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    await sync(runtime, ns_connection, "purchase_order")
    order_id = ns_sandbox.ids("purchaseOrder")[-1]
    ns_sandbox.change("purchaseOrder", order_id, lines={"1": {"quantity": 77}})
    run = await sync(runtime, ns_connection, "purchase_order")
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    record = (await stored(runtime, ns_connection, "purchase_order"))[order_id]
    assert Decimal(record.data["lines"][0]["quantity"]) == Decimal(77)


async def test_incremental_reads_header_change(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    await sync(runtime, ns_connection, "vendor")
    vendor_id = ns_sandbox.ids("vendor")[0]
    ns_sandbox.change("vendor", vendor_id, companyName='Müller & Söhne / "Nord"')
    run = await sync(runtime, ns_connection, "vendor")
    assert run.counts["updated"] == 1
    assert (await stored(runtime, ns_connection, "vendor"))[vendor_id].data[
        "name"
    ] == 'Müller & Söhne / "Nord"'


async def test_incremental_widens_the_day_filter(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    first = await sync(runtime, ns_connection, "vendor")
    again = await sync(runtime, ns_connection, "vendor")
    assert again.status == "succeeded", again.error
    assert again.counts["updated"] == 0
    assert again.counts["fetched"] <= first.counts["fetched"]


async def test_full_sync_marks_deleted_records(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    await sync(runtime, ns_connection, "location", mode="full")
    victim = ns_sandbox.ids("location")[0]
    ns_sandbox.delete("location", victim)
    run = await sync(runtime, ns_connection, "location", mode="full")
    assert run.counts["deleted"] == 1
    assert (await stored(runtime, ns_connection, "location"))[victim].deleted


async def test_rate_limit_with_retry_after_recovers(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    ns_sandbox.arm(kind="status", status=429, retry_after="1", count=1, path_prefix="/services/")
    run = await sync(runtime, ns_connection, "vendor")
    assert run.status == "succeeded", run.error


async def test_server_errors_recover(runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str) -> None:
    ns_sandbox.arm(kind="status", status=500, count=2, path_prefix="/services/")
    run = await sync(runtime, ns_connection, "location")
    assert run.status == "succeeded", run.error


async def test_slow_answer_times_out_then_recovers(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    ns_sandbox.arm(kind="slow", delay=1.5, count=1, path_prefix="/services/")
    run = await sync(runtime, ns_connection, "location")
    assert run.status == "succeeded", run.error


async def test_concurrency_limit_recovers(runtime: Runtime) -> None:
    with open_sandbox(concurrency_limit=1) as sandbox:
        use_tuning(replace(FAST_TUNING, retry=RetryPolicy(max_attempts=40, base_delay=0.01, max_delay=0.05)))
        connection_id = await connect(runtime, sandbox)
        sandbox.arm(kind="slow", delay=0.3, count=2, path_prefix="/services/rest/record/v1/vendor/")
        run = await sync(runtime, connection_id, "vendor", mode="full")
        assert run.status == "succeeded", run.error
        assert run.counts["created"] == len(sandbox.ids("vendor"))


async def test_malformed_page_is_read_again(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    ns_sandbox.arm(kind="malformed", count=1, path_prefix="/services/rest/record/v1/vendor")
    run = await sync(runtime, ns_connection, "vendor")
    assert run.status == "succeeded", run.error


async def test_repeating_next_link_fails_with_reason(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    ns_sandbox.arm(kind="repeat_next", count=1, path_prefix="/services/rest/record/v1/purchaseOrder")
    run = await sync(runtime, ns_connection, "purchase_order")
    assert run.status == "failed"
    assert run.error_code == "invalid_source_data"
    assert "next link" in (run.error or "")


async def test_rotated_token_requires_reauthorization(
    runtime: Runtime, ns_sandbox: NetSuite, ns_connection: str
) -> None:
    ns_sandbox.admin.post("/_sandbox/credentials/rotate").raise_for_status()
    run = await sync(runtime, ns_connection, "vendor")
    assert run.status == "failed"
    assert await connection_status(runtime, ns_connection) == "reauthorization_required"
