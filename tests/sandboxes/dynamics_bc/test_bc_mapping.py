"""Table tests of the Business Central mapping functions and line digests."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from interlink.connectors.dynamics_bc.lines import MAX_BUCKETS, LineDigests
from interlink.connectors.dynamics_bc.mapping import (
    line_status,
    map_purchase_order,
    map_vendor,
    parse_date,
    ref_maker,
)

MAKE_REF = ref_maker("con_test")
VENDOR_ID = "cca5a5a1-9e4d-4e3c-9846-d424c17c6279"


def order(**fields: object) -> dict[str, object]:
    return {
        "id": "17fd3736-b7ef-441c-9e00-ea6dca24be4d",
        "number": "106007",
        "status": "Open",
        "vendorId": VENDOR_ID,
        "totalAmountIncludingTax": Decimal("1397.30"),
        "fullyReceived": False,
        "purchaseOrderLines": [],
        **fields,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [("Draft", "draft"), ("In Review", "pending_approval"), ("Open", "ordered"), ("X", None)],
)
def test_order_status_mapping(status: str, expected: str | None) -> None:
    mapped = map_purchase_order(order(status=status), MAKE_REF)
    assert mapped.status == expected
    assert mapped.remote_status == status


def test_fully_received_wins_over_status() -> None:
    assert map_purchase_order(order(fullyReceived=True), MAKE_REF).status == "received"


@pytest.mark.parametrize(
    ("quantity", "received", "expected"),
    [
        (Decimal(5), Decimal(0), "open"),
        (Decimal(5), Decimal(2), "partially_received"),
        (Decimal(5), Decimal(5), "received"),
    ],
)
def test_line_status(quantity: Decimal, received: Decimal, expected: str) -> None:
    assert line_status(quantity, received) == expected


def test_order_keeps_exact_decimals_and_vendor() -> None:
    mapped = map_purchase_order(order(), MAKE_REF)
    assert mapped.total_gross == Decimal("1397.30")
    assert mapped.vendor is not None
    assert mapped.vendor.remote_id == VENDOR_ID


@pytest.mark.parametrize(("blocked", "active"), [(" ", True), ("All", False), ("Payment", False)])
def test_vendor_blocked_means_inactive(blocked: str, active: bool) -> None:
    assert map_vendor({"id": VENDOR_ID, "displayName": "Fabrikam", "blocked": blocked}).active is active


def test_empty_date_is_none() -> None:
    assert parse_date("0001-01-01") is None


def test_line_digests_find_changed_order() -> None:
    line = {"id": "l1", "documentId": "o1", "quantity": Decimal(1)}
    other = {"id": "l2", "documentId": "o2", "quantity": Decimal(3)}
    before = LineDigests()
    before.add(line)
    before.add(other)
    after = LineDigests()
    after.add(other)
    after.add({**line, "quantity": Decimal(2)})
    restored = LineDigests.decode(before.encode())
    assert after.orders_changed_since(restored) == {"o1"}
    assert before.orders_changed_since(restored) == set()


def test_line_digests_fold_across_sizes() -> None:
    lines = [{"id": f"l{n}", "documentId": f"o{n}", "quantity": Decimal(n)} for n in range(5000)]
    before = LineDigests()
    for line in lines:
        before.add(line)
    assert before.fitting_size() == 2048  # 5,000 orders, at most 4 a bucket
    after = LineDigests()
    for line in lines:
        after.add({**line, "quantity": Decimal(-1)} if line["id"] == "l7" else line)

    for size in (1024, before.fitting_size(), MAX_BUCKETS):
        earlier = LineDigests.decode(before.encode(size))
        changed = after.orders_changed_since(earlier)
        assert "o7" in changed
        assert len(changed) <= 5000 // size + 10  # the orders of one bucket, not more

    assert after.orders_changed_since(LineDigests.decode(after.encode(1024))) == set()
    with pytest.raises(ValueError, match="power of two"):
        LineDigests.decode(base64.b64encode(bytes(4 * 1000)).decode())
