"""The Business Central sandbox's OData responses, as a client receives them."""

from __future__ import annotations

import uuid

from tests.sandboxes.dynamics_bc.conftest import BusinessCentral


def test_id_filter_returns_named_orders(bc_sandbox: BusinessCentral) -> None:
    orders = bc_sandbox.api("purchaseOrders")["value"]
    expected = sorted(order["id"] for order in orders[3:6])
    unknown = str(uuid.uuid4())
    condition = " or ".join(f"id eq {order_id}" for order_id in [*reversed(expected), unknown])

    found = bc_sandbox.api("purchaseOrders", **{"$filter": condition})["value"]
    assert [order["id"] for order in found] == expected

    resumed = {"$filter": condition, "$skiptoken": expected[0]}
    after_first = bc_sandbox.api("purchaseOrders", **resumed)["value"]
    assert [order["id"] for order in after_first] == expected[1:]

    mixed = f"id eq {expected[0]} or number eq '{orders[0]['number']}'"
    both = bc_sandbox.api("purchaseOrders", **{"$filter": mixed})["value"]
    assert sorted(order["id"] for order in both) == sorted([expected[0], orders[0]["id"]])
