"""Table tests of the NetSuite mapping functions, on payloads shaped like the REST API's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from interlink.connectors.netsuite.connector import account_day
from interlink.connectors.netsuite.mapping import map_purchase_order, ref_maker

MAKE_REF = ref_maker("con_test")


def order(status: str, lines: list[dict[str, object]]) -> dict[str, object]:
    return {
        "id": "607632",
        "tranId": "PO45723",
        "status": {"id": status, "refName": status},
        "entity": {"id": "1335929", "refName": "LT Vendor Portal"},
        "currency": {"id": "1", "refName": "US Dollar"},
        "total": Decimal("100.10"),
        "item": {"items": lines},
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Pending Supervisor Approval", "pending_approval"),
        ("Pending Receipt", "ordered"),
        ("Partially Received", "partially_received"),
        ("Fully Billed", "closed"),
        ("Something New", None),
    ],
)
def test_order_status_mapping(status: str, expected: str | None) -> None:
    mapped = map_purchase_order(order(status, []), MAKE_REF)
    assert mapped.status == expected
    assert mapped.remote_status == status


@pytest.mark.parametrize(
    ("quantity", "received", "closed", "expected"),
    [
        (10, 0, False, "open"),
        (10, 4, False, "partially_received"),
        (10, 10, False, "received"),
        (10, 0, True, "cancelled"),
    ],
)
def test_line_status_mapping(quantity: int, received: int, closed: bool, expected: str) -> None:
    line = {
        "line": 1,
        "item": {"id": "13861"},
        "quantity": quantity,
        "quantityReceived": received,
        "isClosed": closed,
    }
    mapped = map_purchase_order(order("Pending Receipt", [line]), MAKE_REF)
    assert mapped.lines[0].status == expected
    assert mapped.lines[0].remote_id == "607632/1"
    assert mapped.lines[0].part is not None
    assert mapped.lines[0].part.remote_id == "13861"


def test_order_keeps_exact_decimals_and_currency() -> None:
    mapped = map_purchase_order(order("Pending Receipt", []), MAKE_REF)
    assert mapped.total_gross == Decimal("100.10")
    assert mapped.currency == "USD"
    assert mapped.vendor is not None
    assert mapped.vendor.remote_id == "1335929"


def test_float_is_rejected() -> None:
    with pytest.raises(TypeError):
        map_purchase_order({**order("Pending Receipt", []), "total": 1.1}, MAKE_REF)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-04T00:30:00+00:00", "12/3/2026"),
        ("2026-12-04T23:59:00+00:00", "12/3/2026"),
        ("2026-01-01T05:00:00+00:00", "12/31/2025"),
        ("2026-03-01T10:00:00+14:00", "2/27/2026"),
    ],
)
def test_account_day_is_a_day_early(moment: str, expected: str) -> None:
    from datetime import datetime

    assert account_day(datetime.fromisoformat(moment)) == expected


@pytest.mark.parametrize(
    ("account", "url"),
    [
        ("1234567", "https://1234567.suitetalk.api.netsuite.com"),
        ("1234567_SB1", "https://1234567-sb1.suitetalk.api.netsuite.com"),
    ],
)
def test_default_base_url(account: str, url: str) -> None:
    from interlink.connectors.netsuite.client import base_url_for

    assert base_url_for(account) == url
