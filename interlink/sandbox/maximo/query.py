"""``oslc.where``, ``oslc.orderBy`` and ``oslc.select`` for the Maximo sandbox.

``oslc.where`` is a list of terms joined by ``and`` (by ``or`` when the request
sets ``opmodeor=1``). A term is ``attribute operator value`` with ``=``, ``!=``,
``>``, ``>=``, ``<``, ``<=``, or ``attribute in [v1,v2]``. Strings and ISO 8601
dates are double-quoted. In a string, ``%`` is a wildcard, ``"*"`` matches any
value that is set and ``!="*"`` matches an unset one. Numbers and ``true``,
``false``, ``1``, ``0`` are bare. A date without an offset is read in the
server's time zone, as Maximo reads it. ``relation.attribute`` matches when
any related row matches, for the relations each object structure lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from interlink.sandbox.maximo.data import BOOLEAN, DATETIME, DECIMAL, INTEGER, MaximoData, ObjectStructure

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TERM = re.compile(
    r"""\s*(?P<attribute>[A-Za-z_][A-Za-z0-9_.]*)\s*
    (?:(?P<operator>>=|<=|!=|=|>|<)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s\]]+)
      |\s+in\s*\[(?P<members>[^\]]*)\])\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_JOINER = re.compile(r"\s+(and|or)\s+", re.IGNORECASE)


class WhereError(ValueError):
    """A query parameter is invalid; the message names the part that failed and why."""


@dataclass(frozen=True)
class _Target:
    attribute: str
    kind: str
    relation: str | None


def parse_where(
    text: str, structure: ObjectStructure, data: MaximoData, server_zone: tzinfo, *, any_term: bool = False
) -> Predicate:
    """Parse ``oslc.where`` into a predicate over the main object's rows."""
    terms: list[Predicate] = []
    rest = text.strip()
    while rest:
        match = _TERM.match(rest)
        if match is None:
            raise WhereError(f"BMXAA1234E - The where clause is invalid near '{rest[:30]}'")
        terms.append(_term(match, structure, data, server_zone))
        rest = rest[match.end() :]
        if rest:
            joiner = _JOINER.match(" " + rest)
            if joiner is None:
                raise WhereError(f"BMXAA1234E - Expected 'and' in the where clause near '{rest[:30]}'")
            if joiner.group(1).lower() == "or":
                raise WhereError("BMXAA1234E - Use 'and' between terms, and opmodeor=1 to join them with or")
            rest = rest[joiner.end() - 1 :]
    if any_term:
        return lambda row: any(term(row) for term in terms)
    return lambda row: all(term(row) for term in terms)


def _term(
    match: re.Match[str], structure: ObjectStructure, data: MaximoData, server_zone: tzinfo
) -> Predicate:
    target = _target(match["attribute"].lower(), structure)
    if match["members"] is not None:
        members = [
            _literal(part.strip(), target, server_zone)
            for part in match["members"].split(",")
            if part.strip()
        ]
        return _over_target(target, structure, data, lambda value: value in members)
    operator, raw = match["operator"], match["value"]
    if raw in ('"*"',) and operator in ("=", "!="):
        is_set = operator == "="
        return _over_target(target, structure, data, lambda value: (value not in (None, "")) == is_set)
    if target.kind not in (DATETIME,) and raw.startswith('"') and "%" in raw:
        pattern = _like(raw[1:-1])
        negate = operator == "!="
        return _over_target(
            target, structure, data, lambda value: bool(pattern.fullmatch(str(value or ""))) != negate
        )
    literal = _literal(raw, target, server_zone)
    compare = _COMPARE[operator]
    return _over_target(target, structure, data, lambda value: value is not None and compare(value, literal))


def _target(attribute: str, structure: ObjectStructure) -> _Target:
    relation, _, name = attribute.rpartition(".")
    if relation:
        child = structure.children.get(relation)
        attributes = structure.attributes if child is not None and child.table == structure.table else None
        if attributes is None or name not in attributes:
            raise WhereError(f"BMXAA1234E - The attribute {attribute} cannot be used in the where clause")
        return _Target(name, attributes[name], relation)
    if attribute not in structure.attributes:
        raise WhereError(f"BMXAA3012E - The attribute {attribute} does not exist in {structure.name.upper()}")
    return _Target(attribute, structure.attributes[attribute], None)


def _over_target(
    target: _Target, structure: ObjectStructure, data: MaximoData, test: Callable[[Any], bool]
) -> Predicate:
    if target.relation is None:
        return lambda row: test(row.get(target.attribute))
    child = structure.children[target.relation]
    return lambda row: any(test(related.get(target.attribute)) for related in data.children(child, row))


def _literal(raw: str, target: _Target, server_zone: tzinfo) -> Any:
    quoted = raw.startswith('"') and raw.endswith('"') and len(raw) >= 2
    text = raw[1:-1].replace('\\"', '"') if quoted else raw
    try:
        if target.kind == DATETIME:
            if not quoted:
                raise ValueError("dates are written in double quotes")
            moment = datetime.fromisoformat(text)
            return (moment if moment.tzinfo else moment.replace(tzinfo=server_zone)).astimezone(UTC)
        if target.kind in (INTEGER, DECIMAL):
            return Decimal(text)
        if target.kind == BOOLEAN:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true, false, 1 or 0")
            return text.lower() in ("true", "1")
    except (ValueError, InvalidOperation) as exc:
        raise WhereError(
            f"BMXAA4144E - The value {raw} is not valid for the attribute {target.attribute}: {exc}"
        ) from exc
    if not quoted:
        raise WhereError(f"BMXAA4144E - The value {raw} for {target.attribute} must be in double quotes")
    return text


def _like(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("%")), re.IGNORECASE)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(value: Any, literal: Any) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)
        return test(value, literal)

    return compare


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": _ordered(lambda value, literal: value == literal),
    "!=": _ordered(lambda value, literal: value != literal),
    ">": _ordered(lambda value, literal: value > literal),
    ">=": _ordered(lambda value, literal: value >= literal),
    "<": _ordered(lambda value, literal: value < literal),
    "<=": _ordered(lambda value, literal: value <= literal),
}


def parse_order(text: str, structure: ObjectStructure) -> list[tuple[str, bool]]:
    """Parse ``oslc.orderBy`` (``-attr1,+attr2``) into (attribute, descending) pairs."""
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        part = part.strip()
        if not part or part[0] not in "+-":
            raise WhereError(f"BMXAA1234E - Each oslc.orderBy attribute needs a + or - prefix: '{part}'")
        name = part[1:].lower()
        if name not in structure.attributes:
            raise WhereError(f"BMXAA3012E - The attribute {name} does not exist in {structure.name.upper()}")
        order.append((name, part[0] == "-"))
    return order


def sort_rows(rows: list[dict[str, Any]], order: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Sort rows by the order pairs; unset values sort first."""
    ordered = list(rows)
    for name, descending in reversed(order):
        ordered.sort(key=lambda row: (row.get(name) is not None, row.get(name) or 0), reverse=descending)
    return ordered


Selection = dict[str, "Selection | None"]


def parse_select(text: str | None) -> Selection | None:
    """Parse ``oslc.select`` (``a,b,child{c,d}`` or ``*``) into a tree; ``None`` selects everything."""
    if text is None or text.strip() == "*":
        return None
    selection, rest = _select_list(text.replace(" ", ""))
    if rest:
        raise WhereError(f"BMXAA1234E - The oslc.select clause is invalid near '{rest[:30]}'")
    return selection


def _select_list(text: str) -> tuple[Selection, str]:
    selection: Selection = {}
    while text and text[0] != "}":
        name_match = re.match(r"[A-Za-z_*][A-Za-z0-9_.*]*", text)
        if name_match is None:
            raise WhereError(f"BMXAA1234E - The oslc.select clause is invalid near '{text[:30]}'")
        name, text = name_match.group().lower(), text[name_match.end() :]
        nested: Selection | None = None
        if text.startswith("{"):
            inner, text = _select_list(text[1:])
            if not text.startswith("}"):
                raise WhereError("BMXAA1234E - A child selection in oslc.select is not closed with }")
            text = text[1:]
            nested = None if list(inner) == ["*"] else inner
            selection[name] = nested if nested is not None else {"*": None}
        else:
            selection[name] = None
        if text.startswith(","):
            text = text[1:]
    return selection, text
