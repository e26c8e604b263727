"""Digests of purchase order lines, to find orders whose lines changed without their header.

Business Central's purchaseOrderLine resource has no change time, and a line
edit may leave its order's ``lastModifiedDateTime`` as it was. So an
incremental read also sweeps every line and folds each into one of
``BUCKETS`` 32-bit digests, chosen by the line's order id. The digests travel
in the cursor; the orders of every bucket whose digest moved are read again,
and the engine's content hash turns the unchanged ones into no-ops. Folding
uses XOR, so the order in which lines arrive does not matter.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKETS = 1024
# The line fields the sweep selects and digests: everything the mapping reads.
LINE_FIELDS = (
    "id",
    "documentId",
    "sequence",
    "itemId",
    "lineType",
    "lineObjectNumber",
    "description",
    "unitOfMeasureCode",
    "quantity",
    "directUnitCost",
    "discountAmount",
    "totalTaxAmount",
    "amountExcludingTax",
    "amountIncludingTax",
    "expectedReceiptDate",
    "receivedQuantity",
    "locationId",
)


def bucket_of(order_id: str) -> int:
    return int.from_bytes(hashlib.sha256(order_id.lower().encode()).digest()[:4], "big") % BUCKETS


def line_digest(line: Mapping[str, Any]) -> int:
    content = {name: line.get(name) for name in LINE_FIELDS}
    encoded = json.dumps(content, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(encoded).digest()[:4], "big")


@dataclass
class LineDigests:
    """One 32-bit digest per bucket, and the order ids the sweep saw in each bucket."""

    values: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    orders: dict[int, set[str]] = field(default_factory=dict)

    def add(self, line: Mapping[str, Any]) -> None:
        order_id = str(line["documentId"])
        bucket = bucket_of(order_id)
        self.values[bucket] ^= line_digest(line)
        self.orders.setdefault(bucket, set()).add(order_id)

    def encode(self) -> str:
        packed = b"".join(value.to_bytes(4, "big") for value in self.values)
        return base64.b64encode(packed).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LineDigests:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
        if len(packed) != BUCKETS * 4:
            raise ValueError(f"line digests hold {len(packed)} bytes; expected {BUCKETS * 4}")
        return cls(values=[int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4)])

    def orders_changed_since(self, earlier: LineDigests) -> set[str]:
        """Return the ids of the orders in every bucket whose digest differs from ``earlier``'s."""
        changed: set[str] = set()
        for bucket, (now, before) in enumerate(zip(self.values, earlier.values, strict=True)):
            if now != before:
                changed |= self.orders.get(bucket, set())
        return changed
