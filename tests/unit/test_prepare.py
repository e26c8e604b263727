"""Preparing a connector's record for the store: its stored JSON, remote times and content hash."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from interlink.connectors.base import Integration, SourceRecord
from interlink.model import PurchaseOrder, PurchaseOrderLine, reference
from interlink.store.records import PreparedRecord
from interlink.sync.prepare import prepare_record
from tests.support.memory_source import MemorySource, memory_integration

CONNECTION_ID = "con_0193"
UPDATED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def integration() -> Integration:
    return memory_integration(MemorySource())  # "fetched_at" is a volatile raw field


def order(**changes: Any) -> PurchaseOrder:
    fields: dict[str, Any] = {
        "number": "PO-1",
        "vendor": reference(CONNECTION_ID, "vendor", "V-1"),
        "total_net": Decimal("210.00"),
        "lines": [PurchaseOrderLine(remote_id="1", quantity=Decimal("2"), description="Pump, 5 kW")],
    }
    return PurchaseOrder(**(fields | changes))


def source_record(data: PurchaseOrder, raw: dict[str, Any], **times: datetime | None) -> SourceRecord:
    return SourceRecord(remote_id="PO-1", data=data, raw=raw, remote_updated_at=UPDATED, **times)


def prepare(integration: Integration, record: SourceRecord) -> PreparedRecord:
    return prepare_record(CONNECTION_ID, integration, "purchase_order", record)


def test_stored_data_is_the_models_json(integration: Integration) -> None:
    data = order()
    record = prepare(integration, source_record(data, {}))
    assert record.data == data.model_dump_json()
    assert json.loads(record.data)["total_net"] == "210.00"


def test_hash_covers_data_raw_and_times(integration: Integration) -> None:
    raw = {"id": 1, "amount": Decimal("210.00"), "fetched_at": "now"}
    record = prepare(integration, source_record(order(), raw))
    # The data as stored, then the rest as canonical JSON: keys sorted, decimals normalized.
    rest = '"deleted":false,"raw":{"amount":"210","id":1},"remote_created_at":null,'
    rest += '"remote_updated_at":"2026-03-04T05:06:07Z"}'
    expected = hashlib.sha256(('{"data":' + record.data + "," + rest).encode()).hexdigest()
    assert record.content_hash == expected
    assert record.raw == {"id": 1, "amount": Decimal("210.00")}


def test_hash_ignores_raw_key_order_and_zeros(integration: Integration) -> None:
    first = source_record(order(), {"a": Decimal("1.50"), "b": [1, 2], "fetched_at": "10:00"})
    second = source_record(order(), {"b": [1, 2], "a": Decimal("1.5"), "fetched_at": "10:05"})
    prepared = [prepare(integration, one) for one in (first, second)]
    assert prepared[0].content_hash == prepared[1].content_hash


@pytest.mark.parametrize(
    "changed",
    [
        {"total_net": Decimal("210.01")},
        {"lines": [PurchaseOrderLine(remote_id="1", quantity=Decimal("3"), description="Pump, 5 kW")]},
        {"vendor": reference(CONNECTION_ID, "vendor", "V-2")},
    ],
    ids=["header", "line", "reference"],
)
def test_hash_sees_a_changed_field(integration: Integration, changed: dict[str, Any]) -> None:
    before = prepare(integration, source_record(order(), {}))
    after = prepare(integration, source_record(order(**changed), {}))
    assert after.content_hash != before.content_hash


def test_remote_times_are_written_in_utc(integration: Integration) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = source_record(order(), {}, remote_created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=plus_two))
    utc = source_record(order(), {}, remote_created_at=datetime(2026, 1, 2, 1, 4, 5, 6, tzinfo=UTC))
    first, second = prepare(integration, local), prepare(integration, utc)
    assert first.remote_created_at == "2026-01-02T01:04:05.000006Z"
    assert first.remote_updated_at == "2026-03-04T05:06:07Z"
    assert first.content_hash == second.content_hash


def test_naive_remote_time_is_rejected(integration: Integration) -> None:
    naive = source_record(order(), {}, remote_created_at=datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="naive datetime"):
        prepare(integration, naive)
