"""The Maximo mapping functions: tables of source values and round trips of remote ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.connectors.maximo import mapping

ref = mapping.ref_builder("con_test")


def work_order(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "wonum": "1001",
        "siteid": "BEDFORD",
        "description": "Replace pump seal",
        "status": "WAPPR",
        "changedate": "2024-05-01T10:00:00-04:00",
    }
    values.update(fields)
    return values


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_remote_id_round_trips(parts: list[str]) -> None:
    assert mapping.split_remote_id(mapping.join_remote_id(*parts)) == parts


@pytest.mark.parametrize(
    ("status", "internal", "expected"),
    [
        ("WAPPR", None, "open"),
        ("APPR", None, "scheduled"),
        ("WMATL", None, "on_hold"),
        ("INPRG", None, "in_progress"),
        ("COMP", None, "completed"),
        ("CLOSE", None, "closed"),
        ("CAN", None, "cancelled"),
        ("FERTIG", "COMP", "completed"),
        ("HISTEDIT", None, None),
    ],
)
def test_work_order_status(status: str, internal: str | None, expected: str | None) -> None:
    result = mapping.work_order(work_order(status=status, status_maxvalue=internal), ref)

    assert result.status == expected
    assert result.remote_status == status


@pytest.mark.parametrize(
    ("priority", "work_type", "expected_priority", "expected_type"),
    [(1, "EM", "urgent", "emergency"), (3, "PM", "medium", "preventive"), (None, "CAL", None, "other")],
)
def test_priority_and_type(
    priority: int | None, work_type: str, expected_priority: str | None, expected_type: str
) -> None:
    result = mapping.work_order(work_order(wopriority=priority, worktype=work_type), ref)

    assert result.priority == expected_priority
    assert result.type == expected_type
    assert result.remote_priority == (str(priority) if priority is not None else None)


def test_work_order_fields_and_tasks() -> None:
    raw = work_order(
        assetnum="PMP/100",
        location="BR200",
        parent="1000",
        targcompdate="2024-05-07T23:30:00-04:00",
        actstart="2024-05-02T08:00:00-04:00",
        estdur=Decimal("6.5"),
        woactivity=[
            {
                "wonum": "T100120",
                "taskid": 20,
                "status": "CAN",
                "estdur": Decimal("1.25"),
                "changedate": "2024-05-03T09:00:00-04:00",
            },
            {"wonum": "T100110", "taskid": 10, "status": "INPRG", "changedate": "2024-05-01T09:00:00-04:00"},
        ],
    )

    result = mapping.work_order(raw, ref)

    assert result.asset == ref("asset", "BEDFORD/PMP%2F100")
    assert result.location == ref("location", "BEDFORD/BR200")
    assert result.parent == ref("work_order", "BEDFORD/1000")
    assert result.due_date == date(2024, 5, 7)
    assert result.started_at == datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    assert result.estimated_hours == Decimal("6.5")
    assert [task.sequence for task in result.tasks] == [10, 20]
    assert [task.status for task in result.tasks] == ["in_progress", "skipped"]
    assert mapping.last_change(raw, ("woactivity",)) == datetime(2024, 5, 3, 13, 0, tzinfo=UTC)


def test_float_number_is_rejected() -> None:
    with pytest.raises(ValueError, match="parse_float=Decimal"):
        mapping.work_order(work_order(estdur=6.5), ref)


def test_time_without_offset_is_rejected() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        mapping.work_order(work_order(schedstart="2024-05-01T10:00:00"), ref)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("OPERATING", "active"),
        ("NOT READY", "inactive"),
        ("BROKEN", "under_maintenance"),
        ("DECOMMISSIONED", "retired"),
    ],
)
def test_asset_status(status: str, expected: str) -> None:
    result = mapping.asset({"assetnum": "11400", "siteid": "BEDFORD", "status": status}, ref)

    assert result.status == expected
    assert result.remote_status == status


def test_location_parent_from_primary_hierarchy() -> None:
    raw = {
        "location": "BR200",
        "siteid": "BEDFORD",
        "type": "STOREROOM",
        "lochierarchy": [
            {"parent": "OTHER", "systemid": "NETWORK"},
            {"parent": "BEDFORD", "systemid": "PRIMARY"},
        ],
    }

    result = mapping.location(raw, ref)

    assert result.parent == ref("location", "BEDFORD/BEDFORD")
    assert result.type == "storeroom"
    assert result.code == "BR200"
