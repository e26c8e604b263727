"""Tests of the Tryton test harness against a real trytond 8.2 server.

Building the template takes about 30 s on a 2-core machine. Set INTERLINK_TRYTON_TEMPLATE_DIR to a
directory to keep the template between runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from interlink.demo.tryton_server import TrytonServer, TrytonServerError, prepare_template

from .tryton_admin import PurchaseLineInput, TrytonAdmin, TrytonRpcError

pytestmark = pytest.mark.tryton

ADMIN_PASSWORD = "harness-admin-password"
PURCHASES = 12
PURCHASE_FIELDS = ["number", "reference", "description", "state", "party", "lines"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("INTERLINK_TRYTON_TEMPLATE_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("tryton-template")
    return prepare_template(directory, purchases=PURCHASES, admin_password=ADMIN_PASSWORD)


@pytest.fixture
def single_copy_server(template: Path, tmp_path: Path) -> Iterator[TrytonServer]:
    with TrytonServer.with_copies(
        template, tmp_path / "server", admin_password=ADMIN_PASSWORD, copies=1
    ) as server:
        yield server


def admin_session(server: TrytonServer, database: str) -> TrytonAdmin:
    admin = TrytonAdmin(server.url, database, server.admin_login, server.admin_password)
    admin.login()
    return admin


def utc_now() -> dt.datetime:
    """Return the current time as naive UTC, the form trytond compares timestamps in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_template_second_call_reuses_files(template: Path) -> None:
    started = time.monotonic()
    again = prepare_template(template.parent, purchases=PURCHASES, admin_password=ADMIN_PASSWORD)

    assert again == template
    assert time.monotonic() - started < 5.0


def test_server_copies_are_independent(template: Path, tmp_path: Path) -> None:
    server = TrytonServer.with_copies(template, tmp_path / "server", admin_password=ADMIN_PASSWORD, copies=2)
    server.start()
    try:
        pid = server.pid
        port = server.port
        assert pid is not None
        assert server.url.startswith("http://127.0.0.1:")
        first_name = server.acquire_database()
        second_name = server.acquire_database()
        assert first_name != second_name
        with pytest.raises(TrytonServerError):
            server.acquire_database()

        first = admin_session(server, first_name)
        second = admin_session(server, second_name)
        purchase_ids = first.list_ids("purchase.purchase")
        assert len(purchase_ids) == PURCHASES
        assert second.list_ids("purchase.purchase") == purchase_ids
        seeded = first.read("purchase.purchase", purchase_ids, PURCHASE_FIELDS)
        assert second.read("purchase.purchase", purchase_ids, PURCHASE_FIELDS) == seeded
        states = {purchase["state"] for purchase in seeded}
        assert {"draft", "quotation", "confirmed", "processing", "cancelled", "done"} <= states

        since = utc_now()
        edited = seeded[2]
        first.set_purchase_field(edited["id"], "reference", "EDITED-IN-FIRST-COPY")
        # trytond rejects writes to the lines of a purchase that is no longer a draft.
        line_owner, draft = [purchase for purchase in seeded if purchase["state"] == "draft"][:2]
        line_id = line_owner["lines"][0]
        first.set_purchase_line(line_id, quantity=99.0, unit_price=Decimal("1.2345"))
        first.delete_draft_purchase(draft["id"])
        product_id = first.list_ids("product.product", [["code", "=", "BRG-6204"]])[0]
        created_id = first.create_purchase(
            edited["party"],
            [PurchaseLineInput(product_id, 3.0, Decimal("4.1000"))],
            reference="CREATED-IN-FIRST-COPY",
        )

        changed = first.call(
            "model.purchase.purchase.search_read",
            [["last_modified_at", ">=", since]],
            0,
            None,
            [["id", "ASC"]],
            ["reference", "last_modified_at"],
        )
        changed_ids = [record["id"] for record in changed]
        assert line_owner["id"] not in changed_ids
        assert changed_ids == [edited["id"], created_id]
        assert isinstance(changed[0]["last_modified_at"], dt.datetime)
        changed_lines = first.call(
            "model.purchase.line.search_read",
            [["last_modified_at", ">=", since]],
            0,
            None,
            [["id", "ASC"]],
            ["purchase", "quantity", "unit_price"],
        )
        edited_line = next(line for line in changed_lines if line["id"] == line_id)
        assert edited_line["quantity"] == 99.0
        assert edited_line["unit_price"] == Decimal("1.2345")

        second_ids = second.list_ids("purchase.purchase")
        assert second_ids == purchase_ids
        assert second.read("purchase.purchase", purchase_ids, PURCHASE_FIELDS) == seeded
        assert second.read("purchase.line", [line_id], ["quantity"])[0]["quantity"] != 99.0
        first_ids = first.list_ids("purchase.purchase")
        assert draft["id"] not in first_ids
        assert created_id in first_ids
        first.close()
        second.close()
    finally:
        server.stop()

    assert server.pid is None
    assert not pid_exists(pid)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_password_change_ends_session(single_copy_server: TrytonServer) -> None:
    server = single_copy_server
    database = server.acquire_database()
    buyer = next(user for user in server.users if user.login == "buyer")
    with (
        admin_session(server, database) as admin,
        TrytonAdmin(server.url, database, buyer.login, buyer.password) as session,
    ):
        assert session.list_ids("purchase.purchase")

        admin.change_password(buyer.id, "buyer-changed-password")

        with pytest.raises(TrytonRpcError) as raised:
            session.list_ids("purchase.purchase")
        assert raised.value.status_code == httpx.codes.UNAUTHORIZED


def test_rest_key_reads_purchases(single_copy_server: TrytonServer) -> None:
    server = single_copy_server
    database = server.acquire_database()
    domain = base64.urlsafe_b64encode(json.dumps([["state", "=", "draft"]]).encode())
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        response = client.get(
            f"{server.rest_url(database)}model/purchase.purchase",
            params=[("d", domain.decode()), ("f", "reference"), ("f", "last_modified_at")],
            headers={"Authorization": f"Bearer {server.rest_application_key}"},
        )
        rejected = client.get(
            f"{server.rest_url(database)}model/purchase.purchase",
            headers={"Authorization": "Bearer not-a-key"},
        )

    assert response.status_code == httpx.codes.OK
    records = response.json()
    assert records
    assert all(record["__name__"] == "purchase.purchase" for record in records)
    assert all(record["last_modified_at"]["__class__"] == "datetime" for record in records)
    assert rejected.status_code == httpx.codes.UNAUTHORIZED
