"""The Maximo connector against its sandbox over real HTTP, driven through the sync engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from interlink.connectors.base import ConnectorContext, ReadWindow
from interlink.connectors.http import create_client
from interlink.connectors.maximo import MaximoOptions, build_integration
from interlink.connectors.maximo.mapping import join_remote_id
from interlink.model import build_record_id
from interlink.runtime import Runtime
from tests.sandboxes.conftest import connection_status, stored, sync
from tests.sandboxes.maximo.conftest import MaximoSandbox

WO_PATH = "/maximo/oslc/os/mxapiwo"


async def test_full_sync_reads_every_entity(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    expected = {
        "work_order": len(maximo_sandbox.work_orders()),
        "asset": len(maximo_sandbox.rows("mxapiasset")),
        "location": len(maximo_sandbox.rows("mxapilocations")),
    }
    for entity, count in expected.items():
        run = await sync(runtime, maximo_connection, entity, mode="full")
        assert run.status == "succeeded", run.error
        assert run.counts["created"] == count, entity
        assert run.counts["deleted"] == 0, entity


async def test_work_order_keeps_tasks_and_decimals(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    await sync(runtime, maximo_connection, "work_order", mode="full")
    order = maximo_sandbox.work_orders()[4]
    tasks = [row for row in maximo_sandbox.rows("mxapiwo") if row["parent"] == order["wonum"]]

    record = (await stored(runtime, maximo_connection, "work_order"))[f"BEDFORD/{order['wonum']}"]

    assert [task["remote_id"] for task in record.data["tasks"]] == [task["wonum"] for task in tasks]
    assert Decimal(record.data["estimated_hours"]) == Decimal(order["estdur"])
    assert record.data["asset"]["id"] == build_record_id(
        maximo_connection, "asset", f"BEDFORD/{order['assetnum']}"
    )
    assert record.data["remote_status"] == order["status"]
    latest = max(datetime.fromisoformat(row["changedate"]) for row in [order, *tasks])
    assert record.remote_updated_at == latest


async def test_asset_with_slash_in_key(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    await sync(runtime, maximo_connection, "asset", mode="full")

    records = await stored(runtime, maximo_connection, "asset")

    assert "BEDFORD/PMP%2F100" in records
    assert records["BEDFORD/PMP%2F100"].data["number"] == "PMP/100"


async def test_incremental_reads_header_change(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    first = await sync(runtime, maximo_connection, "work_order")
    wonum = maximo_sandbox.work_orders()[7]["wonum"]
    maximo_sandbox.change(
        "mxapiwo", {"wonum": wonum, "siteid": "BEDFORD"}, description="Replace the impeller"
    )

    run = await sync(runtime, maximo_connection, "work_order")

    record = (await stored(runtime, maximo_connection, "work_order"))[f"BEDFORD/{wonum}"]
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    assert run.counts["fetched"] < first.counts["fetched"]
    assert record.data["title"] == "Replace the impeller"


async def test_incremental_reads_task_only_change(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    await sync(runtime, maximo_connection, "work_order")
    task = next(row for row in maximo_sandbox.rows("mxapiwo") if row["istask"])
    parent = next(row for row in maximo_sandbox.work_orders() if row["wonum"] == task["parent"])
    maximo_sandbox.change("mxapiwo", {"wonum": task["wonum"], "siteid": "BEDFORD"}, status="COMP")

    run = await sync(runtime, maximo_connection, "work_order")

    after = next(row for row in maximo_sandbox.work_orders() if row["wonum"] == task["parent"])
    record = (await stored(runtime, maximo_connection, "work_order"))[f"BEDFORD/{task['parent']}"]
    changed = next(item for item in record.data["tasks"] if item["remote_id"] == task["wonum"])
    assert after["changedate"] == parent["changedate"]
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    assert changed["status"] == "completed"


async def test_incremental_sends_dates_with_offset(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    # The sandbox's server zone is New York. A lower bound sent without an offset would be
    # read there, hours after the UTC mark, and the second change would fall before it.
    first, second = (row["assetnum"] for row in maximo_sandbox.rows("mxapiasset")[:2])
    maximo_sandbox.change("mxapiasset", {"assetnum": first, "siteid": "BEDFORD"}, status="BROKEN")
    await sync(runtime, maximo_connection, "asset")
    maximo_sandbox.change("mxapiasset", {"assetnum": second, "siteid": "BEDFORD"}, status="DECOMMISSIONED")

    run = await sync(runtime, maximo_connection, "asset")

    record = (await stored(runtime, maximo_connection, "asset"))[join_remote_id("BEDFORD", second)]
    assert run.status == "succeeded", run.error
    assert run.counts["updated"] == 1
    assert record.data["status"] == "retired"
    assert record.remote_updated_at == maximo_sandbox.clock.now


async def test_full_sync_finds_deletions(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    await sync(runtime, maximo_connection, "location", mode="full")
    location = maximo_sandbox.rows("mxapilocations")[1]["location"]
    maximo_sandbox.delete("mxapilocations", {"location": location, "siteid": "BEDFORD"})

    incremental = await sync(runtime, maximo_connection, "location")
    full = await sync(runtime, maximo_connection, "location", mode="full")

    records = await stored(runtime, maximo_connection, "location")
    assert incremental.counts["deleted"] == 0
    assert full.status == "succeeded", full.error
    assert full.counts["deleted"] == 1
    assert records[f"BEDFORD/{location}"].deleted


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 429, "retry_after": "0"},
        {"kind": "status", "status": 502},
        {"kind": "malformed"},
        {"kind": "slow", "delay": 1.0},
    ],
    ids=["rate-limited", "bad-gateway", "malformed-page", "slow-answer"],
)
async def test_fault_is_retried(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str, fault: dict[str, object]
) -> None:
    runtime.engine.http_factory = lambda: create_client(timeout=httpx.Timeout(0.5))
    maximo_sandbox.arm(**fault, path_prefix=WO_PATH)

    run = await sync(runtime, maximo_connection, "work_order", mode="full")

    assert run.status == "succeeded", run.error
    assert run.counts["created"] == len(maximo_sandbox.work_orders())


async def test_repeating_next_page_fails_the_run(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    maximo_sandbox.arm(kind="repeat_next", path_prefix=WO_PATH)

    run = await sync(runtime, maximo_connection, "work_order", mode="full")

    assert run.status == "failed"
    assert run.error is not None
    assert "repeats a page already read" in run.error


async def test_persistent_outage_fails_with_reason(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    maximo_sandbox.arm(kind="status", status=500, count=10, path_prefix="/maximo/oslc/os/mxapiasset")

    run = await sync(runtime, maximo_connection, "asset")

    assert run.status == "failed"
    assert run.error is not None
    assert "500" in run.error
    assert (await connection_status(runtime, maximo_connection)) == ("degraded", "unreachable")


async def test_rotated_api_key_requires_reauthorization(
    runtime: Runtime, maximo_sandbox: MaximoSandbox, maximo_connection: str
) -> None:
    await sync(runtime, maximo_connection, "location")
    maximo_sandbox.admin.post("/_sandbox/credentials/rotate", json={}).raise_for_status()

    run = await sync(runtime, maximo_connection, "location")

    assert run.status == "failed"
    assert (await connection_status(runtime, maximo_connection)) == (
        "reauthorization_required",
        "credentials_invalid",
    )


async def test_full_read_resumes_after_last_id(
    maximo_sandbox: MaximoSandbox, maximo_options: MaximoOptions
) -> None:
    window = ReadWindow(mode="full", history_start=datetime.now(UTC) - timedelta(days=365))
    async with create_client() as http:
        context = ConnectorContext(
            "con_resume", "api_key", maximo_sandbox.credentials, http, _ignore_credentials
        )
        reader = build_integration(maximo_options).build(context).reader("work_order")
        pages = [page async for page in reader.read(None, window)]
        resumed = [page async for page in reader.read(pages[1].cursor, window)]

    keys = [record.remote_id for page in pages for record in page.records]
    resumed_keys = [record.remote_id for page in resumed for record in page.records]
    assert len(pages) > 2
    assert len(keys) == len(set(keys))
    assert resumed_keys == keys[len(pages[0].records) + len(pages[1].records) :]
    assert resumed[-1].complete


async def _ignore_credentials(values: Mapping[str, str]) -> None:
    return None
