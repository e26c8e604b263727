"""Digests of purchase order lines, to find orders whose lines changed without their header.

Business Central's purchaseOrderLine resource has no change time, and a line
edit may leave its order's ``lastModifiedDateTime`` as it was. So a read
sometimes also sweeps every line (``connector.py`` says when) and folds each
into one of many 32-bit digests, its bucket chosen by the line's order id.
The digests travel in the cursor. The orders of every bucket whose digest
moved are read again, and the engine's content hash turns the unchanged ones
into no-ops. Folding uses XOR, so the order in which lines arrive does not
matter.

A sweep fills ``MAX_BUCKETS`` buckets. The cursor keeps a power of two of
them, at least ``MIN_BUCKETS``, with about ``ORDERS_PER_BUCKET`` orders in
each. A bucket is the order's hash modulo the bucket count, so digests of
two powers of two compare once the larger is folded down. That includes
cursors written with the earlier fixed count of 1,024 buckets.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

MAX_BUCKETS = 65_536
MIN_BUCKETS = 1024
# Then a line change makes the connector read about 4 orders again.
ORDERS_PER_BUCKET = 4
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


# The fields in the order line_digest writes them (sorted), each with the JSON text before its value.
_FIELD_PREFIXES = tuple(
    (name, ("{" if position == 0 else ", ") + encode_basestring_ascii(name) + ": ")
    for position, name in enumerate(sorted(LINE_FIELDS))
)


def bucket_of(order_id: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(order_id.lower().encode()).digest()[:4], "big") % buckets


def line_digest(line: Mapping[str, Any]) -> int:
    """Hash the line's ``LINE_FIELDS`` into 32 bits.

    The hashed text is ``json.dumps(fields, sort_keys=True, default=str)``.
    It is built here field by field, byte for byte the same, so digests
    stored in cursors keep their meaning. For a typical line this took
    about half the time of ``json.dumps`` (5 µs against 10 µs, timed once
    with ``timeit`` on the 2-core benchmark machine).
    """
    parts = [prefix + _json_value(line.get(name)) for name, prefix in _FIELD_PREFIXES]
    encoded = ("".join(parts) + "}").encode()
    return int.from_bytes(hashlib.sha256(encoded).digest()[:4], "big")


def _json_value(value: Any) -> str:
    """Encode one value as ``json.dumps(value, sort_keys=True, default=str)`` does."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is Decimal:
        return encode_basestring_ascii(str(value))
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class LineDigests:
    """One 32-bit digest per bucket, and the order ids the sweep saw in each bucket."""

    values: list[int] = field(default_factory=lambda: [0] * MAX_BUCKETS)
    orders: dict[int, set[str]] = field(default_factory=dict)
    # Bucket of each order id added so far: an order has several lines, but one bucket.
    _buckets: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def add(self, line: Mapping[str, Any]) -> None:
        order_id = str(line["documentId"])
        bucket = self._buckets.get(order_id)
        if bucket is None:
            bucket = self._buckets[order_id] = bucket_of(order_id, len(self.values))
            self.orders.setdefault(bucket, set()).add(order_id)
        self.values[bucket] ^= line_digest(line)

    def fitting_size(self) -> int:
        """Return the bucket count to keep: about ``ORDERS_PER_BUCKET`` orders each, a power of two."""
        size = MIN_BUCKETS
        while size < len(self.values) and size * ORDERS_PER_BUCKET < len(self._buckets):
            size *= 2
        return min(size, len(self.values))

    def folded(self, size: int) -> list[int]:
        """Return the digests for ``size`` buckets, a power of two no larger than this one's count."""
        if size > len(self.values) or len(self.values) % size:
            raise ValueError(f"cannot fold {len(self.values)} line digests into {size}")
        result = self.values[:size]
        for start in range(size, len(self.values), size):
            for bucket, value in enumerate(self.values[start : start + size]):
                result[bucket] ^= value
        return result

    def encode(self, size: int | None = None) -> str:
        """Encode the digests, folded to ``size`` buckets if given, for a cursor."""
        values = self.values if size is None else self.folded(size)
        packed = b"".join(value.to_bytes(4, "big") for value in values)
        return base64.b64encode(packed).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LineDigests:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
        count = len(packed) // 4
        if len(packed) % 4 or count < 1 or count > MAX_BUCKETS or count & (count - 1):
            raise ValueError(
                f"line digests hold {len(packed)} bytes; expected 4 bytes for each of a power of two "
                f"buckets, at most {MAX_BUCKETS}"
            )
        return cls(values=[int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4)])

    def orders_changed_since(self, earlier: LineDigests) -> set[str]:
        """Return the ids of the orders in every bucket whose digest differs from ``earlier``'s.

        The two compare at the smaller bucket count of the two.
        """
        size = min(len(self.values), len(earlier.values))
        moved = {
            bucket
            for bucket, (now, before) in enumerate(zip(self.folded(size), earlier.folded(size), strict=True))
            if now != before
        }
        changed: set[str] = set()
        for bucket, order_ids in self.orders.items():
            if bucket % size in moved:
                changed |= order_ids
        return changed
