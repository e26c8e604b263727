"""A small JSON-RPC client that acts as a Tryton user against a running trytond.

Tests use it to change data behind Interlink's back: edit a purchase or one of
its lines, create or delete purchases, or change a password so that the
user's sessions end. It speaks trytond 8.x JSON-RPC: ``POST /<database>/rpc/``
with ``{"id", "method", "params"}``, the context dict as the last parameter,
and Decimal, date and datetime values tagged with ``__class__``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx


class TrytonRpcError(Exception):
    """trytond returned a JSON-RPC error envelope or an HTTP error status."""

    def __init__(self, method: str, status_code: int, error: Any) -> None:
        super().__init__(f"{method} failed with HTTP {status_code}: {error!r}")
        self.method = method
        self.status_code = status_code
        self.error = error


@dataclass(frozen=True)
class PurchaseLineInput:
    product_id: int
    quantity: float
    unit_price: Decimal


def encode_value(value: Any) -> Any:
    """Tag Decimal, datetime and date values the way trytond's JSON decoder expects."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Mapping):
        return {key: encode_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(item) for item in value]
    return value


def decode_object(tagged: dict[str, Any]) -> Any:
    """Turn one tagged JSON object from trytond back into a Python value."""
    kind = tagged.get("__class__")
    if kind == "Decimal":
        return Decimal(tagged["decimal"])
    if kind == "datetime":
        return dt.datetime(
            tagged["year"],
            tagged["month"],
            tagged["day"],
            tagged["hour"],
            tagged["minute"],
            tagged["second"],
            tagged["microsecond"],
        )
    if kind == "date":
        return dt.date(tagged["year"], tagged["month"], tagged["day"])
    if kind == "timedelta":
        return dt.timedelta(seconds=tagged["seconds"])
    return tagged


class TrytonAdmin:
    """A logged-in Tryton user on one database of a running server."""

    def __init__(
        self, server_url: str, database: str, login: str, password: str, *, timeout: float = 30.0
    ) -> None:
        self.rpc_url = f"{server_url.rstrip('/')}/{database}/rpc/"
        self.login_name = login
        self._password = password
        # trust_env=False keeps proxy variables from routing loopback traffic elsewhere.
        self._client = httpx.Client(timeout=timeout, trust_env=False)
        self._authorization: str | None = None
        self.user_id: int | None = None
        self.context: dict[str, Any] = {}

    def __enter__(self) -> TrytonAdmin:
        self.login()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def login(self) -> None:
        """Open a session with ``common.db.login`` and load the user's context."""
        result = self._post("common.db.login", [self.login_name, {"password": self._password}, "en"])
        user_id, session_key = result[0], result[1]
        token = base64.b64encode(f"{self.login_name}:{user_id}:{session_key}".encode())
        self._authorization = f"Session {token.decode()}"
        self.user_id = int(user_id)
        self.context = self._post("model.res.user.get_preferences", [True, {}])

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with ``params`` followed by the session's context."""
        return self._post(method, [*params, self.context])

    def list_ids(self, model: str, domain: Sequence[Any] = (), *, active_test: bool = False) -> list[int]:
        """Return the ids of ``model`` matching ``domain``, archived records included by default."""
        context = {**self.context, "active_test": active_test}
        ids = self._post(f"model.{model}.search", [list(domain), 0, None, [["id", "ASC"]], context])
        return [int(record_id) for record_id in ids]

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.call(f"model.{model}.read", list(ids), list(fields))
        return records

    def write(self, model: str, ids: Sequence[int], values: Mapping[str, Any]) -> None:
        self.call(f"model.{model}.write", list(ids), dict(values))

    def set_purchase_field(self, purchase_id: int, field: str, value: Any) -> None:
        """Change one header field of a purchase.

        trytond accepts ``reference`` in every state, but most other fields only in draft.
        """
        self.write("purchase.purchase", [purchase_id], {field: value})

    def set_purchase_line(
        self, line_id: int, *, quantity: float | None = None, unit_price: Decimal | None = None
    ) -> None:
        """Change one purchase line of a draft purchase.

        trytond rejects the write unless the purchase is a draft, and it does
        not update the purchase's ``last_modified_at``.
        """
        values: dict[str, Any] = {}
        if quantity is not None:
            values["quantity"] = quantity
        if unit_price is not None:
            values["unit_price"] = unit_price
        if not values:
            raise ValueError("set_purchase_line needs a quantity or a unit_price")
        self.write("purchase.line", [line_id], values)

    def create_purchase(
        self,
        party_id: int,
        lines: Sequence[PurchaseLineInput],
        *,
        reference: str | None = None,
        description: str | None = None,
    ) -> int:
        """Create a draft purchase with product lines and return its id."""
        products = self.read("product.product", sorted({line.product_id for line in lines}), ["purchase_uom"])
        units = {product["id"]: product["purchase_uom"] for product in products}
        line_values = [
            {
                "product": line.product_id,
                "quantity": line.quantity,
                "unit": units[line.product_id],
                "unit_price": line.unit_price,
            }
            for line in lines
        ]
        header: dict[str, Any] = {
            "party": party_id,
            "invoice_address": self._invoice_address(party_id),
            "lines": [["create", line_values]],
        }
        if reference is not None:
            header["reference"] = reference
        if description is not None:
            header["description"] = description
        created = self.call("model.purchase.purchase.create", [header])
        return int(created[0])

    def delete_draft_purchase(self, purchase_id: int) -> None:
        """Delete a purchase. trytond rejects the deletion unless it is a draft or cancelled."""
        self.call("model.purchase.purchase.delete", [purchase_id])

    def change_password(self, user_id: int, new_password: str) -> None:
        """Set a user's password, which ends that user's sessions."""
        self.write("res.user", [user_id], {"password": new_password})

    def _invoice_address(self, party_id: int) -> int:
        address_ids = self.list_ids("party.address", [["party", "=", party_id]])
        if not address_ids:
            raise ValueError(f"party {party_id} has no address to invoice")
        return address_ids[0]

    def _post(self, method: str, params: list[Any]) -> Any:
        headers = {"Authorization": self._authorization} if self._authorization else {}
        body = json.dumps({"id": 1, "method": method, "params": encode_value(params)})
        response = self._client.post(
            self.rpc_url, content=body, headers={"Content-Type": "application/json", **headers}
        )
        if response.status_code != httpx.codes.OK:
            raise TrytonRpcError(method, response.status_code, response.text[:500])
        payload = json.loads(response.text, object_hook=decode_object)
        if "error" in payload:
            raise TrytonRpcError(method, response.status_code, payload["error"])
        return payload["result"]
