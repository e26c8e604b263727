"""The SAP mapping functions: tables of source values and properties of decimal arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.connectors.sap_s4hana import mapping
from interlink.model import Ref

ref = mapping.ref_builder("con_test")


def item(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "PurchaseOrderItem": "10",
        "PurchasingDocumentDeletionCode": "",
        "OrderQuantity": "2.000",
        "NetPriceAmount": "10.00",
        "NetPriceQuantity": "1",
        "IsCompletelyDelivered": False,
        "IsFinallyInvoiced": False,
        "Material": "TG-0001",
    }
    values.update(fields)
    return values


def order(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "__metadata": {"uri": "http://sap.example/A_PurchaseOrder('4500000001')"},
        "PurchaseOrder": "4500000001",
        "PurchasingDocumentDeletionCode": "",
        "PurchasingProcessingStatus": "05",
        "Supplier": "17300001",
        "PurchaseOrderDate": "/Date(1714521600000)/",
        "DocumentCurrency": "EUR",
        "PaymentTerms": "",
        "to_PurchaseOrderItem": {"results": list(items)},
    }
    values.update(fields)
    return values


@pytest.mark.parametrize(
    ("header", "items", "expected"),
    [
        ({"PurchasingDocumentDeletionCode": "L"}, [item(IsCompletelyDelivered=True)], "cancelled"),
        ({}, [item(IsCompletelyDelivered=True, IsFinallyInvoiced=True)], "closed"),
        (
            {},
            [item(IsCompletelyDelivered=True), item(PurchaseOrderItem="20", IsCompletelyDelivered=True)],
            "received",
        ),
        ({}, [item(IsCompletelyDelivered=True), item(PurchaseOrderItem="20")], "partially_received"),
        (
            {},
            [
                item(),
                item(PurchaseOrderItem="20", PurchasingDocumentDeletionCode="L", IsCompletelyDelivered=True),
            ],
            "ordered",
        ),
        ({"PurchasingProcessingStatus": "01"}, [item()], "draft"),
        ({"PurchasingProcessingStatus": "03"}, [item()], "pending_approval"),
        ({"PurchasingProcessingStatus": "99"}, [item()], None),
    ],
)
def test_purchase_order_status(
    header: dict[str, Any], items: list[dict[str, Any]], expected: str | None
) -> None:
    assert mapping.purchase_order(order(*items, **header), ref).status == expected


def test_purchase_order_fields_and_lines() -> None:
    result = mapping.purchase_order(
        order(item(PurchaseOrderItem="20"), item(NetPriceAmount="1234.50", NetPriceQuantity="100")), ref
    )

    assert result.number == "4500000001"
    assert result.vendor == Ref(id=ref("vendor", "17300001").id, remote_id="17300001")
    assert result.order_date == date(2024, 5, 1)
    assert result.payment_terms is None
    assert [line.line_number for line in result.lines] == [10, 20]
    assert result.lines[0].unit_price == Decimal("12.345")
    assert result.lines[0].line_total == Decimal("24.69")
    assert result.total_net == Decimal("44.69")
    assert result.lines[0].part == ref("part", "TG-0001")


def test_cancelled_lines_stay_out_of_the_total() -> None:
    result = mapping.purchase_order(
        order(item(), item(PurchaseOrderItem="20", PurchasingDocumentDeletionCode="L")), ref
    )

    assert result.lines[1].status == "cancelled"
    assert result.total_net == Decimal("20.00")


def test_float_decimal_is_rejected() -> None:
    with pytest.raises(ValueError, match="parse_float=Decimal"):
        mapping.purchase_order(order(item(OrderQuantity=2.5)), ref)


amounts = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False, allow_infinity=False)


@given(quantity=amounts, price=amounts)
def test_line_total_is_exact(quantity: Decimal, price: Decimal) -> None:
    line = mapping.purchase_order_line(item(OrderQuantity=str(quantity), NetPriceAmount=str(price)), ref)

    assert line.line_total == quantity * price
    assert line.quantity == quantity


def test_raw_cleaning_drops_links_at_every_level() -> None:
    raw = order(item(__metadata={"uri": "x"}, to_PurchaseOrder={"__deferred": {"uri": "y"}}))

    cleaned = mapping.clean_raw(raw)

    assert "__metadata" not in cleaned
    assert cleaned["to_PurchaseOrderItem"]["results"][0]["OrderQuantity"] == "2.000"
    assert "__metadata" not in cleaned["to_PurchaseOrderItem"]["results"][0]
    assert "to_PurchaseOrder" not in cleaned["to_PurchaseOrderItem"]["results"][0]


@pytest.mark.parametrize(
    ("system_status", "expected"),
    [
        ("CRTD MANC NMAT", "open"),
        ("REL  MANC NMAT", "scheduled"),
        ("REL  PCNF", "in_progress"),
        ("TECO CNF", "completed"),
        ("CLSD CNF", "closed"),
        ("REL  DLFL", "cancelled"),
        ("", None),
    ],
)
def test_work_order_status(system_status: str, expected: str | None) -> None:
    assert mapping.work_order_status(system_status) == expected


def test_work_order_fields_and_tasks() -> None:
    raw = {
        "MaintenanceOrder": "4000001",
        "MaintenanceOrderDesc": "Replace valve seal",
        "MaintenanceOrderType": "PM03",
        "MaintPriority": "2",
        "SystemStatusText": "REL",
        "Equipment": "217100001",
        "FunctionalLocation": "1710-SPA",
        "MaintOrdSchedldBscStrtDateTime": "/Date(1714557600000+0000)/",
        "MaintOrdBasicEndDate": "/Date(1714694400000)/",
        "to_MaintenanceOrderOperation": {
            "results": [
                {
                    "MaintenanceOrderOperation": "0020",
                    "MaintenanceOrderSubOperation": "0001",
                    "OperationDescription": "Test run",
                    "MaintOrdOperationWorkDuration": "90",
                    "MaintOrdOpWorkDurationUnit": "MIN",
                    "ActualWorkQuantity": "30",
                    "SystemStatusText": "PCNF",
                    "IsMarkedForDeletion": False,
                },
                {
                    "MaintenanceOrderOperation": "0010",
                    "MaintenanceOrderSubOperation": "",
                    "OperationDescription": "Inspect",
                    "MaintOrdOperationWorkDuration": "2.5",
                    "MaintOrdOpWorkDurationUnit": "H",
                    "ActualWorkQuantity": "0.000",
                    "SystemStatusText": "REL",
                    "IsMarkedForDeletion": True,
                },
            ]
        },
    }

    result = mapping.work_order(raw, ref)

    assert result.type == "other"
    assert result.priority == "high"
    assert result.remote_priority == "2"
    assert result.asset == ref("asset", "217100001")
    assert result.scheduled_start_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert result.due_date == date(2024, 5, 3)
    assert [task.remote_id for task in result.tasks] == ["0010", "0020/0001"]
    assert [task.status for task in result.tasks] == ["skipped", "in_progress"]
    assert result.tasks[1].estimated_hours == Decimal("1.5")
    assert result.estimated_hours == Decimal("4.0")
    assert result.actual_hours == Decimal("0.5")


def test_vendor_prefers_default_contact() -> None:
    raw = {
        "Supplier": "17300002",
        "BusinessPartnerFullName": "O'Brien Industrial Supply",
        "BusinessPartnerIsBlocked": False,
        "IsMarkedForArchiving": False,
        "to_BusinessPartnerAddress": {
            "results": [
                {
                    "StreetName": "Deer Creek Road",
                    "HouseNumber": "3410",
                    "CityName": "Palo Alto",
                    "Region": "CA",
                    "PostalCode": "94304",
                    "Country": "US",
                    "to_EmailAddress": {
                        "results": [
                            {"EmailAddress": "old@example.com", "IsDefaultEmailAddress": False},
                            {"EmailAddress": "orders@example.com", "IsDefaultEmailAddress": True},
                        ]
                    },
                    "to_PhoneNumber": {"__deferred": {"uri": "x"}},
                }
            ]
        },
    }

    result = mapping.vendor(raw)

    assert result.number == "17300002"
    assert result.email == "orders@example.com"
    assert result.phone is None
    assert result.address is not None
    assert result.address.line1 == "Deer Creek Road 3410"
    assert result.active is True


@pytest.mark.parametrize(
    ("flags", "status", "remote_status"),
    [
        ({}, "active", None),
        ({"EquipmentIsInactive": True}, "inactive", "EquipmentIsInactive"),
        (
            {"EquipmentIsInactive": True, "EquipmentIsMarkedForDeletion": True},
            "retired",
            "EquipmentIsMarkedForDeletion",
        ),
    ],
)
def test_asset_status(flags: dict[str, bool], status: str, remote_status: str | None) -> None:
    result = mapping.asset({"Equipment": "217100001", "OperationStartDate": "", **flags}, ref)

    assert result.status == status
    assert result.remote_status == remote_status


@pytest.mark.parametrize(
    ("product_type", "expected"),
    [("DIEN", "service"), ("NLAG", "non_stock"), ("ERSA", "stock"), ("", None)],
)
def test_part_type(product_type: str, expected: str | None) -> None:
    result = mapping.part(
        {"Product": "TG-0001", "ProductType": product_type, "to_Description": {"results": []}}
    )

    assert result.type == expected


def test_location_hierarchy() -> None:
    result = mapping.location(
        {
            "FunctionalLocation": "1710-SPA-01",
            "SuperiorFunctionalLocation": "1710-SPA",
            "FunctionalLocationName": "Area 1",
        },
        ref,
    )

    assert result.parent == ref("location", "1710-SPA")
    assert result.code == "1710-SPA-01"
    assert result.address is None
