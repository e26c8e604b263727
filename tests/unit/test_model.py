from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from interlink.model import (
    ENTITIES,
    PurchaseOrder,
    PurchaseOrderLine,
    Ref,
    build_record_id,
    canonical_json,
    content_hash,
    new_id,
    reference,
)


def test_record_id_is_deterministic_and_prefixed() -> None:
    first = build_record_id("con_1", "purchase_order", "42")
    again = build_record_id("con_1", "purchase_order", "42")
    assert first == again
    assert first.startswith("po_")
    assert len(first) == len("po_") + 26


def test_record_id_differs_per_connection_entity_and_key() -> None:
    base = build_record_id("con_1", "vendor", "42")
    assert build_record_id("con_2", "vendor", "42") != base
    assert build_record_id("con_1", "part", "42") != base
    assert build_record_id("con_1", "vendor", "43") != base


def test_record_id_hides_the_remote_key() -> None:
    assert "secret-key-7" not in build_record_id("con_1", "user", "secret-key-7")


def test_record_id_does_not_confuse_part_boundaries() -> None:
    assert build_record_id("con_1", "vendor", "a\x1fb") != build_record_id("con_1\x1fvendor", "vendor", "b")


def test_new_id_is_time_ordered_uuid7() -> None:
    first = new_id("run")
    second = new_id("run")
    assert first.startswith("run_")
    assert first[4:][12] == "7"  # version nibble
    assert first[:16] <= second[:16]  # millisecond prefix never goes back


def test_decimals_serialize_as_strings_without_floats() -> None:
    order = PurchaseOrder(total_net=Decimal("1234.50"), lines=[PurchaseOrderLine(quantity=Decimal("0.1"))])
    dumped = order.model_dump(mode="json")
    assert dumped["total_net"] == "1234.50"
    assert dumped["lines"][0]["quantity"] == "0.1"


def test_decimal_exponent_written_plain() -> None:
    order = PurchaseOrder(total_net="1E+2", total_tax=Decimal("1E-7"), total_gross=Decimal("12.50"))
    dumped = order.model_dump(mode="json")
    assert (dumped["total_net"], dumped["total_tax"], dumped["total_gross"]) == ("100", "0.0000001", "12.50")
    assert '"total_net":"100","total_tax":"0.0000001"' in order.model_dump_json()
    assert order.total_net == Decimal(100)
    assert order.total_tax == Decimal("0.0000001")


def test_fractional_times_written_with_z() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 4000, tzinfo=timezone(timedelta(hours=-5)))
    assert PurchaseOrder(approved_at=moment).model_dump(mode="json")["approved_at"] == (
        "2026-03-01T17:00:00.004000Z"
    )


def test_decimal_rejects_infinity() -> None:
    with pytest.raises(ValidationError):
        PurchaseOrder(total_net=Decimal("Infinity"))
    with pytest.raises(ValidationError):
        PurchaseOrder(total_net="NaN")


def test_times_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    order = PurchaseOrder(approved_at=datetime(2026, 3, 1, 12, 0, tzinfo=paris))
    assert order.model_dump(mode="json")["approved_at"] == "2026-03-01T11:00:00Z"


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        PurchaseOrder(approved_at=datetime(2026, 3, 1, 12, 0))


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PurchaseOrder.model_validate({"numbr": "PO-1"})


def test_every_entity_has_a_record_schema_with_envelope() -> None:
    for entity in ENTITIES.values():
        schema = entity.record_model.model_json_schema()
        assert "id" in schema["properties"], entity.name
        assert "remote_id" in schema["properties"], entity.name
        assert set(schema["required"]) >= {"id", "remote_id", "connection_id", "created_at"}, entity.name


def test_schema_types_decimals_as_strings() -> None:
    schema = ENTITIES["purchase_order"].record_model.model_json_schema()
    total = schema["properties"]["total_net"]["anyOf"][0]
    assert total["type"] == "string"


def test_content_hash_ignores_key_order_and_trailing_zeros() -> None:
    first = {"a": Decimal("210.00"), "b": [1, 2]}
    second = {"b": [1, 2], "a": Decimal("210")}
    assert content_hash(first) == content_hash(second)


def test_content_hash_sees_a_changed_value() -> None:
    assert content_hash({"a": Decimal("210.00")}) != content_hash({"a": Decimal("210.01")})


def test_canonical_json_writes_times_in_utc() -> None:
    moment = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert canonical_json({"t": moment}) == b'{"t":"2026-01-01T00:00:00Z"}'
    assert canonical_json({"t": moment}) == canonical_json({"t": moment.astimezone(UTC)})


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4))
def test_decimal_round_trips_through_json(value: Decimal) -> None:
    line = PurchaseOrderLine(unit_price=value)
    restored = PurchaseOrderLine.model_validate_json(line.model_dump_json())
    assert restored.unit_price == value


def test_ref_requires_both_ids() -> None:
    with pytest.raises(ValidationError):
        Ref.model_validate({"id": "vnd_x"})


def test_reference_is_frozen_and_shared() -> None:
    first = reference("con_1", "vendor", "V-7")
    assert first == Ref(id=build_record_id("con_1", "vendor", "V-7"), remote_id="V-7")
    assert reference("con_1", "vendor", "V-7") is first
    assert reference("con_2", "vendor", "V-7") != first
    with pytest.raises(ValidationError):
        first.remote_id = "V-8"
