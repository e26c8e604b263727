"""OData v2 verbose JSON for the SAP sandbox: resource paths, values, ``$expand`` and ``$select``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from interlink.connectors.odata import (
    entity_path,
    format_edm_time,
    format_json_datetime,
    format_json_datetime_offset,
    parse_edm_time,
    parse_json_datetime,
    parse_json_datetime_offset,
)
from interlink.sandbox.sap_s4hana.data import Key, SapData, key_of
from interlink.sandbox.sap_s4hana.query import QueryError, parse_literal
from interlink.sandbox.sap_s4hana.schema import ENTITY_SETS, EntitySet

ExpandTree = dict[str, "ExpandTree"]


class NotFound(LookupError):
    """A resource path names no entity set, navigation or record."""


@dataclass(frozen=True)
class Resource:
    """Target of a resource path such as ``A_PurchaseOrder('45')/to_PurchaseOrderItem``."""

    entity_set: EntitySet
    key: Key | None = None
    navigation: str | None = None
    count: bool = False


def parse_resource(service: str, raw_path: str) -> Resource:
    """Parse the part of a URL path after the service name; ``raw_path`` is still percent-encoded."""
    segments = [unquote(segment) for segment in raw_path.split("/") if segment]
    if not segments or len(segments) > 3:
        raise NotFound(f"Resource not found for the segment '{raw_path}'")
    name, _, predicate = segments[0].partition("(")
    entity_set = ENTITY_SETS.get(name)
    if entity_set is None or entity_set.service != service:
        raise NotFound(f"Resource not found for the segment '{name}'")
    key = parse_key(entity_set, "(" + predicate) if predicate else None
    rest = segments[1:]
    if rest == ["$count"] and key is None:
        return Resource(entity_set, count=True)
    if not rest:
        return Resource(entity_set, key)
    if key is None or entity_set.navigation(rest[0]) is None:
        raise NotFound(f"Resource not found for the segment '{rest[0]}'")
    return Resource(entity_set, key, rest[0], count=rest[1:] == ["$count"])


def parse_key(entity_set: EntitySet, predicate: str) -> Key:
    """Parse ``('45')`` or ``(A='x',B=datetime'...')`` into the key tuple of ``entity_set``."""
    if not predicate.endswith(")"):
        raise QueryError(f"invalid key predicate {predicate!r}")
    parts = _split_outside_quotes(predicate[1:-1])
    values: dict[str, Any] = {}
    if len(parts) == 1 and "=" not in parts[0].partition("'")[0]:
        if len(entity_set.keys) != 1:
            raise QueryError(f"{entity_set.name} has a composite key: {', '.join(entity_set.keys)}")
        values[entity_set.keys[0]] = parse_literal(parts[0])[1]
    else:
        for part in parts:
            name, _, literal = part.partition("=")
            if name not in entity_set.keys:
                raise QueryError(f"{name} is not a key property of {entity_set.name}")
            values[name] = parse_literal(literal)[1]
    if set(values) != set(entity_set.keys):
        raise QueryError(f"the key of {entity_set.name} needs {', '.join(entity_set.keys)}")
    return tuple(values[name] for name in entity_set.keys)


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for character in text:
        if character == "'":
            quoted = not quoted
        if character == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


def parse_expand(text: str | None, entity_set: EntitySet) -> ExpandTree:
    """Parse ``$expand`` such as ``to_BusinessPartnerAddress/to_EmailAddress`` into a tree."""
    tree: ExpandTree = {}
    for path in (text or "").split(","):
        if not path.strip():
            continue
        node, current = tree, entity_set
        for name in path.strip().split("/"):
            navigation = current.navigation(name)
            if navigation is None:
                raise QueryError(f"Property {name} not found in type {current.type_name}")
            node = node.setdefault(name, {})
            current = ENTITY_SETS[navigation.target]
    return tree


def parse_select(text: str | None, entity_set: EntitySet) -> set[str] | None:
    """Parse ``$select`` into top-level names; ``None`` selects everything."""
    if not text or text.strip() == "*":
        return None
    selected: set[str] = set()
    for item in text.split(","):
        name = item.strip().split("/")[0]
        if name not in entity_set.properties and entity_set.navigation(name) is None:
            raise QueryError(f"Property {name} not found in type {entity_set.type_name}")
        selected.add(name)
    return selected


class Serializer:
    """Writes records as OData v2 verbose JSON, with absolute URIs under ``root``."""

    def __init__(self, data: SapData, root: str) -> None:
        self.data = data
        self.root = root.rstrip("/")

    def entity_uri(self, entity_set: EntitySet, row: Mapping[str, Any]) -> str:
        key = {name: row[name] for name in entity_set.keys}
        single = key[entity_set.keys[0]] if len(entity_set.keys) == 1 else key
        return f"{self.root}/{entity_set.service}/{entity_path(entity_set.name, single)}"

    def entity(
        self,
        entity_set: EntitySet,
        row: Mapping[str, Any],
        expand: ExpandTree | None = None,
        select: set[str] | None = None,
    ) -> dict[str, Any]:
        uri = self.entity_uri(entity_set, row)
        body: dict[str, Any] = {"__metadata": {"id": uri, "uri": uri, "type": entity_set.qualified_type}}
        for name, edm_type in entity_set.properties.items():
            if select is None or name in select:
                body[name] = to_json(edm_type, row.get(name))
        for navigation in entity_set.navigations:
            if select is not None and navigation.name not in select:
                continue
            if expand is not None and navigation.name in expand:
                body[navigation.name] = self._expanded(navigation.name, entity_set, row, expand)
            else:
                body[navigation.name] = {"__deferred": {"uri": f"{uri}/{navigation.name}"}}
        return body

    def _expanded(
        self, name: str, entity_set: EntitySet, row: Mapping[str, Any], expand: ExpandTree
    ) -> dict[str, Any] | None:
        navigation = entity_set.navigation(name)
        assert navigation is not None
        target = ENTITY_SETS[navigation.target]
        children = sorted(
            self.data.related(navigation.join, target.name, row), key=lambda child: key_of(target, child)
        )
        rendered = [self.entity(target, child, expand[name]) for child in children]
        if navigation.many:
            return {"results": rendered}
        return rendered[0] if rendered else None


def to_json(edm_type: str, value: Any) -> Any:
    """Write one typed value the way OData v2 verbose JSON carries it."""
    if value is None:
        return None
    if edm_type == "Edm.DateTimeOffset":
        return format_json_datetime_offset(value.astimezone(UTC))
    if edm_type == "Edm.DateTime":
        return format_json_datetime(value)
    if edm_type == "Edm.Time":
        return format_edm_time(value)
    if edm_type == "Edm.Decimal":
        return format(value, "f")
    return value


def from_json(entity_set: EntitySet, body: Mapping[str, Any]) -> dict[str, Any]:
    """Read a write request body (OData v2 JSON values) into typed values; navigations are left out."""
    typed: dict[str, Any] = {}
    for name, value in body.items():
        if name == "__metadata" or entity_set.navigation(name) is not None:
            continue
        edm_type = entity_set.properties.get(name)
        if edm_type is None:
            raise QueryError(f"Property {name} not found in type {entity_set.type_name}")
        typed[name] = _from_json_value(name, edm_type, value)
    return typed


def _from_json_value(name: str, edm_type: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if edm_type == "Edm.DateTimeOffset":
            if str(value).startswith("/Date("):
                return parse_json_datetime_offset(str(value))
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
        if edm_type == "Edm.DateTime":
            if str(value).startswith("/Date("):
                return parse_json_datetime(str(value))
            return datetime.fromisoformat(str(value))
        if edm_type == "Edm.Time":
            return (
                parse_edm_time(str(value)) if str(value).startswith("PT") else time.fromisoformat(str(value))
            )
        if edm_type == "Edm.Decimal":
            if not isinstance(value, str):
                raise ValueError("Edm.Decimal values are sent as strings")
            return Decimal(value)
        if edm_type == "Edm.Boolean" and not isinstance(value, bool):
            raise ValueError("expected true or false")
        if edm_type == "Edm.String" and not isinstance(value, str):
            raise ValueError("expected a string")
    except (ValueError, InvalidOperation) as exc:
        raise QueryError(f"Invalid value for property {name}: {exc}") from exc
    return value
