"""Identifiers: deterministic record ids and time-ordered ids for everything else."""

from __future__ import annotations

import hashlib
import os
import time

# One prefix per entity, so an id shows which entity it names.
RECORD_ID_PREFIXES: dict[str, str] = {
    "purchase_order": "po",
    "work_order": "wo",
    "asset": "ast",
    "part": "prt",
    "vendor": "vnd",
    "location": "loc",
    "user": "usr",
    "conversation": "cnv",
    "message": "msg",
}


# Lowercase RFC 4648 base32, and every pair of its digits indexed by the 10 bits they encode.
_BASE32_DIGITS = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = [first + second for first in _BASE32_DIGITS for second in _BASE32_DIGITS]


def build_record_id(connection_id: str, entity: str, remote_id: str) -> str:
    """Build the Interlink id of a record from its connection, entity and remote id.

    The id is the first 26 characters of the lowercase base32 SHA-256 of the
    three parts, so a reference can be built before the referenced record is
    synced, and the id reveals nothing of the source key.
    """
    prefix = RECORD_ID_PREFIXES[entity]
    material = "\x1f".join((connection_id, entity, remote_id)).encode()
    # 26 base32 digits encode the first 130 bits of the digest. Encoding them two digits at a
    # time gives the same text as base64.b32encode at about half its cost.
    bits = int.from_bytes(hashlib.sha256(material).digest()[:17], "big") >> 6
    digits = "".join([_BASE32_PAIRS[(bits >> shift) & 0x3FF] for shift in range(120, -1, -10)])
    return f"{prefix}_{digits}"


def uuid7_hex() -> str:
    """Return a UUIDv7 (RFC 9562) as 32 hex digits: 48 bits of Unix milliseconds, then random bits."""
    unix_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (random_bits >> 68) << 64  # 12 bits of rand_a
    value |= 0b10 << 62  # variant
    value |= random_bits & ((1 << 62) - 1)  # 62 bits of rand_b
    return f"{value:032x}"


def new_id(prefix: str) -> str:
    """Return a new prefixed UUIDv7 id such as ``con_01936d...``: sortable by creation time."""
    return f"{prefix}_{uuid7_hex()}"
