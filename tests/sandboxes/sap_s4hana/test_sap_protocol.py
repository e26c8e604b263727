"""The SAP sandbox's OData protocol, and the connector's client against it, over real HTTP."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx

from interlink.connectors.http import create_client
from interlink.connectors.sap_s4hana.client import SapClient, SapSettings
from interlink.sandbox.sap_s4hana import create_app
from tests.sandboxes.sap_s4hana.conftest import FAST_RETRIES, SapSandbox
from tests.support.sandbox_server import serve

PO_SERVICE = "API_PURCHASEORDER_PROCESS_SRV"
ORDERS = f"/{PO_SERVICE}/A_PurchaseOrder"


def test_collection_pages_with_skiptoken(sap_sandbox: SapSandbox) -> None:
    with sap_sandbox.api() as api:
        first = api.get(ORDERS, params={"$top": "12", "$inlinecount": "allpages"}).json()["d"]
        second = api.get(first["__next"]).json()["d"]
        third = api.get(second["__next"]).json()["d"]

    keys = [row["PurchaseOrder"] for page in (first, second, third) for row in page["results"]]
    assert len(first["results"]) == 5
    assert "$skiptoken=5" in first["__next"].replace("%24", "$")
    assert "__next" not in third
    assert len(keys) == 12
    assert keys == sorted(set(keys))
    assert first["__count"] == "24"


def test_values_use_odata_v2_json_formats(sap_sandbox: SapSandbox) -> None:
    with sap_sandbox.api() as api:
        order = api.get(ORDERS, params={"$top": "1", "$expand": "to_PurchaseOrderItem"}).json()["d"][
            "results"
        ][0]
        partner = api.get("/API_BUSINESS_PARTNER/A_BusinessPartner", params={"$top": "2"}).json()["d"][
            "results"
        ][1]

    item = order["to_PurchaseOrderItem"]["results"][0]
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", order["LastChangeDateTime"])
    assert re.fullmatch(r"/Date\(\d+\)/", order["CreationDate"])
    assert re.fullmatch(r"PT\d\dH\d\dM\d\dS", partner["LastChangeTime"])
    assert isinstance(item["OrderQuantity"], str)
    assert isinstance(item["NetPriceAmount"], str)
    assert order["PurchasingDocumentDeletionCode"] in ("", "L")
    assert order["__metadata"]["type"] == "API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType"
    assert "__deferred" in item["to_PurchaseOrder"]


def test_wrong_literal_type_is_rejected(sap_sandbox: SapSandbox) -> None:
    with sap_sandbox.api() as api:
        wrong = api.get(ORDERS, params={"$filter": "LastChangeDateTime ge datetime'2024-01-01T00:00:00'"})
        right = api.get(
            ORDERS, params={"$filter": "LastChangeDateTime ge datetimeoffset'2024-01-01T00:00:00Z'"}
        )
        unknown = api.get(ORDERS, params={"$filter": "ChangedOn ge datetimeoffset'2024-01-01T00:00:00Z'"})

    assert wrong.status_code == 400
    assert "Invalid parametertype" in wrong.json()["error"]["message"]["value"]
    assert right.status_code == 200
    assert unknown.status_code == 400
    assert "ChangedOn" in unknown.json()["error"]["message"]["value"]


def test_logon_needs_user_and_client(sap_sandbox: SapSandbox) -> None:
    with sap_sandbox.api() as api:
        other_client = api.get(ORDERS, params={"sap-client": "200"})
        own_client = api.get(ORDERS, params={"sap-client": "100", "$top": "1"})
    anonymous = sap_sandbox.admin.get(f"/sap/opu/odata/sap{ORDERS}", headers={"Accept": "application/json"})

    assert other_client.status_code == 401
    assert own_client.status_code == 200
    assert anonymous.status_code == 401
    assert "SAP NetWeaver" in anonymous.headers["www-authenticate"]


def test_writes_need_a_csrf_token(sap_sandbox: SapSandbox) -> None:
    path = f"{ORDERS}('4500000001')"
    with sap_sandbox.api() as api:
        refused = api.patch(path, json={"PaymentTerms": "0002"})
        token = api.get(f"/{PO_SERVICE}/", headers={"x-csrf-token": "Fetch"}).headers["x-csrf-token"]
        accepted = api.patch(path, json={"PaymentTerms": "0002"}, headers={"x-csrf-token": token})
        order = api.get(path).json()["d"]

    assert refused.status_code == 403
    assert refused.headers["x-csrf-token"] == "Required"
    assert accepted.status_code == 204
    assert order["PaymentTerms"] == "0002"


def test_item_write_leaves_header_stamp(sap_sandbox: SapSandbox) -> None:
    order_path = f"{ORDERS}('4500000002')"
    item_path = f"/{PO_SERVICE}/A_PurchaseOrderItem(PurchaseOrder='4500000002',PurchaseOrderItem='10')"
    with sap_sandbox.api() as api:
        stamp_before = api.get(order_path).json()["d"]["LastChangeDateTime"]
        token = api.get(f"/{PO_SERVICE}/", headers={"x-csrf-token": "Fetch"}).headers["x-csrf-token"]
        sap_sandbox.clock.advance(timedelta(hours=1))
        api.patch(
            item_path, json={"OrderQuantity": "3.000"}, headers={"x-csrf-token": token}
        ).raise_for_status()
        item = api.get(item_path).json()["d"]
        stamp_after_item = api.get(order_path).json()["d"]["LastChangeDateTime"]
        api.patch(
            order_path, json={"PaymentTerms": "0004"}, headers={"x-csrf-token": token}
        ).raise_for_status()
        stamp_after_header = api.get(order_path).json()["d"]["LastChangeDateTime"]

    assert item["OrderQuantity"] == "3.000"
    assert stamp_after_item == stamp_before
    assert stamp_after_header != stamp_before


def test_count_and_expand_of_nested_navigations(sap_sandbox: SapSandbox) -> None:
    with sap_sandbox.api() as api:
        count = api.get("/API_MAINTENANCEORDER/MaintenanceOrder/$count").text
        partner = api.get(
            "/API_BUSINESS_PARTNER/A_BusinessPartner('17300001')",
            params={"$expand": "to_BusinessPartnerAddress/to_EmailAddress"},
        ).json()["d"]

    address = partner["to_BusinessPartnerAddress"]["results"][0]
    assert count == "24"
    assert address["to_EmailAddress"]["results"][0]["EmailAddress"].startswith("orders")
    assert "__deferred" in address["to_PhoneNumber"]


async def test_client_escapes_quotes_and_slashes_in_keys(sap_sandbox: SapSandbox) -> None:
    async with create_client() as http:
        client = SapClient(http, SapSettings.from_credentials(sap_sandbox.credentials), policy=FAST_RETRIES)
        with_slash = await client.get_entity("API_PRODUCT_SRV", "A_Product", "RM/1001", {})
        with_quote = await client.get_entity("API_PRODUCT_SRV", "A_Product", "O'RING-12", {})
        equipment = await client.get_entity(
            "API_EQUIPMENT",
            "Equipment",
            {"Equipment": "217100001", "ValidityEndDate": datetime(9999, 12, 31)},
            {},
        )
        after_quote = [
            row["Product"]
            async for page in client.pages(
                "API_PRODUCT_SRV",
                "A_Product",
                {"$filter": "Product gt 'O''RING-12'", "$orderby": "Product asc"},
            )
            for row in page
        ]

    assert with_slash["Product"] == "RM/1001"
    assert with_quote["Product"] == "O'RING-12"
    assert equipment["Equipment"] == "217100001"
    assert after_quote
    assert all(product > "O'RING-12" for product in after_quote)


async def test_client_fetches_a_new_csrf_token_once(sap_sandbox: SapSandbox) -> None:
    async with create_client() as http:
        client = SapClient(http, SapSettings.from_credentials(sap_sandbox.credentials), policy=FAST_RETRIES)
        await client.write("PATCH", PO_SERVICE, "A_PurchaseOrder('4500000003')", {"PaymentTerms": "0001"})
        client._csrf_tokens[PO_SERVICE] = "expired-token"
        response = await client.write(
            "PATCH", PO_SERVICE, "A_PurchaseOrder('4500000003')", {"PaymentTerms": "ZB14"}
        )

    with sap_sandbox.api() as api:
        order = api.get(f"{ORDERS}('4500000003')").json()["d"]
    assert response.status_code == 204
    assert order["PaymentTerms"] == "ZB14"


def test_base_url_may_include_the_odata_path() -> None:
    with_path = SapSettings.from_credentials(
        {"base_url": "https://s4.example.com/sap/opu/odata/sap/", "username": "u", "password": "p"}
    )
    without_path = SapSettings.from_credentials(
        {"base_url": "https://s4.example.com", "username": "u", "password": "p", "sap_client": " "}
    )

    assert with_path.root == "https://s4.example.com/sap/opu/odata/sap"
    assert without_path.root == "https://s4.example.com/sap/opu/odata/sap"
    assert without_path.sap_client is None


def test_same_seed_gives_same_data(sap_sandbox: SapSandbox) -> None:
    def orders(app_seed: int) -> list[dict[str, object]]:
        app = create_app(size=24, seed=app_seed, clock=sap_sandbox.clock, max_page_size=5)
        with serve(app) as server, httpx.Client(base_url=server.base_url) as admin:
            records: list[dict[str, object]] = admin.get("/_sandbox/records/A_PurchaseOrderItem").json()[
                "records"
            ]
        return records

    assert orders(7) == sap_sandbox.records("A_PurchaseOrderItem")
    assert orders(8) != sap_sandbox.records("A_PurchaseOrderItem")
