"""The Maximo sandbox's REST API, and the connector's client against it, over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from interlink.connectors.errors import SourceRejected
from interlink.connectors.http import create_client
from interlink.connectors.maximo.client import MaximoClient, MaximoSettings
from interlink.sandbox.maximo import create_app
from tests.sandboxes.maximo.conftest import FAST_RETRIES, MaximoSandbox
from tests.support.sandbox_server import serve

WORK_ORDERS = "/os/mxapiwo"


def test_pages_follow_next_page_links(maximo_sandbox: MaximoSandbox) -> None:
    params = {"lean": "1", "oslc.select": "wonum", "oslc.pageSize": "10", "collectioncount": "1"}
    with maximo_sandbox.api() as api:
        first = api.get(WORK_ORDERS, params=params).json()
        second = api.get(first["responseInfo"]["nextPage"]["href"]).json()

    total = len(maximo_sandbox.rows("mxapiwo"))
    assert first["responseInfo"]["pagenum"] == 1
    assert first["responseInfo"]["totalCount"] == total
    assert first["responseInfo"]["totalPages"] == -(-total // 10)
    assert "pageno=2" in first["responseInfo"]["nextPage"]["href"]
    assert second["responseInfo"]["pagenum"] == 2
    assert "pageno=1" in second["responseInfo"]["previousPage"]["href"]
    assert {row["wonum"] for row in first["member"]}.isdisjoint(row["wonum"] for row in second["member"])


def test_lean_and_select_shape_the_members(maximo_sandbox: MaximoSandbox) -> None:
    with maximo_sandbox.api() as api:
        bare = api.get(WORK_ORDERS, params={"lean": "1", "oslc.pageSize": "1"}).json()["member"][0]
        namespaced = api.get(WORK_ORDERS, params={"oslc.select": "wonum", "oslc.pageSize": "1"}).json()
        selected = api.get(
            WORK_ORDERS,
            params={
                "lean": "1",
                "oslc.pageSize": "1",
                "oslc.select": "wonum,status,estdur,woactivity{taskid}",
                "oslc.where": "istask=0",
                "internalvalues": "1",
            },
        ).json()["member"][0]

    assert list(bare) == ["href"]
    assert namespaced["rdfs:member"][0]["spi:wonum"]
    assert "oslc:responseInfo" in namespaced
    assert selected["status_maxvalue"] == selected["status"]
    assert selected["status_description"]
    assert isinstance(selected["_rowstamp"], str)
    assert isinstance(selected["estdur"], float)
    assert all(set(task) <= {"href", "_rowstamp", "taskid"} for task in selected["woactivity"])


def test_api_key_in_header_or_parameter(maximo_sandbox: MaximoSandbox) -> None:
    key = maximo_sandbox.credentials["api_key"]
    base = "/maximo/oslc/whoami"
    in_header = maximo_sandbox.admin.get(base, headers={"apikey": key})
    in_parameter = maximo_sandbox.admin.get(base, params={"apikey": key})
    wrong = maximo_sandbox.admin.get(base, headers={"apikey": "not-the-key"})

    assert in_header.status_code == 200
    assert in_parameter.status_code == 200
    assert wrong.status_code == 401
    assert wrong.json()["Error"]["reasonCode"] == "BMXAA7901E"
    assert wrong.json()["Error"]["statusCode"] == "401"


def test_invalid_queries_are_rejected(maximo_sandbox: MaximoSandbox) -> None:
    with maximo_sandbox.api() as api:
        unknown = api.get(WORK_ORDERS, params={"lean": "1", "oslc.where": 'colour="red"'})
        bad_date = api.get(WORK_ORDERS, params={"lean": "1", "oslc.where": 'changedate>="last week"'})
        too_large = api.get(WORK_ORDERS, params={"lean": "1", "oslc.pageSize": "51"})
        with_or = api.get(WORK_ORDERS, params={"lean": "1", "oslc.where": 'status="APPR" or status="COMP"'})

    assert unknown.status_code == 400
    assert "colour" in unknown.json()["Error"]["message"]
    assert bad_date.status_code == 400
    assert too_large.status_code == 400
    assert "mxe.oslc.maxpagesize" in too_large.json()["Error"]["message"]
    assert with_or.status_code == 400


def test_naive_dates_are_server_local(maximo_sandbox: MaximoSandbox) -> None:
    order = maximo_sandbox.work_orders()[0]
    changed = order["changedate"]
    with maximo_sandbox.api() as api:
        with_offset = api.get(
            WORK_ORDERS,
            params={"lean": "1", "oslc.select": "wonum", "oslc.where": f'changedate>="{changed}"'},
        ).json()["member"]
        naive_utc = api.get(
            WORK_ORDERS,
            params={"lean": "1", "oslc.select": "wonum", "oslc.where": f'changedate>="{changed[:19]}"'},
        ).json()["member"]

    assert order["wonum"] in {row["wonum"] for row in with_offset}
    # The same wall-clock digits without offset are read in New York, hours later than UTC.
    assert order["wonum"] not in {row["wonum"] for row in naive_utc}


def test_where_supports_in_wildcards_and_set(maximo_sandbox: MaximoSandbox) -> None:
    def wonums(where: str) -> set[str]:
        with maximo_sandbox.api() as api:
            params = {"lean": "1", "oslc.select": "wonum", "oslc.where": where, "oslc.pageSize": "50"}
            return {row["wonum"] for row in api.get(WORK_ORDERS, params=params).json()["member"]}

    assert wonums('wonum in ["1001","1003"]') == {"1001", "1003"}
    assert wonums('wonum="T100%"') == {
        row["wonum"]
        for row in maximo_sandbox.rows("mxapiwo")
        if row["istask"] and row["parent"].startswith("100")
    }
    assert wonums('parent!="*" and istask=1') == set()
    assert wonums('parent="*"') == {row["wonum"] for row in maximo_sandbox.rows("mxapiwo") if row["parent"]}


def test_task_change_leaves_parent_changedate(maximo_sandbox: MaximoSandbox) -> None:
    task = next(row for row in maximo_sandbox.rows("mxapiwo") if row["istask"])
    parent_before = next(row for row in maximo_sandbox.work_orders() if row["wonum"] == task["parent"])

    maximo_sandbox.change("mxapiwo", {"wonum": task["wonum"], "siteid": "BEDFORD"}, description="Check again")

    parent_after = next(row for row in maximo_sandbox.work_orders() if row["wonum"] == task["parent"])
    task_after = next(row for row in maximo_sandbox.rows("mxapiwo") if row["wonum"] == task["wonum"])
    assert parent_after["changedate"] == parent_before["changedate"]
    assert parent_after["_rowstamp"] == parent_before["_rowstamp"]
    assert task_after["changedate"] != task["changedate"]
    assert int(task_after["_rowstamp"]) > int(task["_rowstamp"])


def test_member_by_href(maximo_sandbox: MaximoSandbox) -> None:
    with maximo_sandbox.api() as api:
        listed = api.get(
            "/os/mxapiasset", params={"lean": "1", "oslc.select": "assetnum", "oslc.pageSize": "3"}
        )
        href = listed.json()["member"][1]["href"]
        member = api.get(href, params={"lean": "1"}).json()

    assert member["assetnum"] == "PMP/100"


async def test_client_decodes_numbers_as_decimals(maximo_sandbox: MaximoSandbox) -> None:
    async with create_client() as http:
        client = MaximoClient(
            http, MaximoSettings.from_credentials(maximo_sandbox.credentials), policy=FAST_RETRIES
        )
        pages = [
            page
            async for page in client.pages(
                "mxapiasset", {"oslc.select": "assetnum,purchaseprice", "oslc.pageSize": "50"}
            )
        ]

    prices = {row["assetnum"]: row["purchaseprice"] for row in pages[0]}
    expected = {row["assetnum"]: Decimal(row["purchaseprice"]) for row in maximo_sandbox.rows("mxapiasset")}
    assert prices == expected
    assert all(isinstance(price, Decimal) for price in prices.values())


async def test_client_reports_maximo_errors(maximo_sandbox: MaximoSandbox) -> None:
    async with create_client() as http:
        client = MaximoClient(
            http, MaximoSettings.from_credentials(maximo_sandbox.credentials), policy=FAST_RETRIES
        )
        with pytest.raises(SourceRejected, match="BMXAA3012E"):
            await anext(client.pages("mxapiwo", {"oslc.where": 'colour="red"'}))


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("https://mx.example.com", "https://mx.example.com/maximo/oslc"),
        ("https://mx.example.com/maximo/", "https://mx.example.com/maximo/oslc"),
        ("https://mx.example.com/maximo/api", "https://mx.example.com/maximo/api"),
        ("https://mx.example.com/maximo/oslc", "https://mx.example.com/maximo/oslc"),
    ],
)
def test_base_url_forms(base_url: str, root: str) -> None:
    assert MaximoSettings.from_credentials({"base_url": base_url, "api_key": "k"}).root == root


def test_same_seed_gives_same_data(maximo_sandbox: MaximoSandbox) -> None:
    def rows(app_seed: int) -> list[dict[str, object]]:
        app = create_app(size=24, seed=app_seed, clock=maximo_sandbox.clock, max_page_size=50)
        with serve(app) as server, httpx.Client(base_url=server.base_url) as admin:
            records: list[dict[str, object]] = admin.get("/_sandbox/records/mxapiwo").json()["records"]
        return records

    assert rows(5) == maximo_sandbox.rows("mxapiwo")
    assert rows(6) != maximo_sandbox.rows("mxapiwo")
