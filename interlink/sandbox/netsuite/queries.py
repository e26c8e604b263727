"""Record collection filters (``q``) and a small SuiteQL subset, both day-granular on dates.

``q`` accepts conditions ``field OPERATOR value`` joined by ``AND`` / ``OR``
(``AND`` binds tighter). Date operators (``ON``, ``AFTER``, ``BEFORE``,
``ON_OR_AFTER``, ``ON_OR_BEFORE`` and their ``_NOT`` forms) take a quoted date
in the account's format, ``"M/D/YYYY"``, and compare it with the calendar day
of the record's time in the account's time zone: a time of day is not
accepted. String fields take ``IS``, ``IS_NOT``, ``START_WITH`` and ``CONTAIN``.

SuiteQL accepts ``SELECT columns FROM table [WHERE condition [AND ...]]
[ORDER BY column [ASC|DESC]]`` with conditions ``column op literal`` (``=``,
``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``), where a literal is a number, a
``'string'`` or ``TO_DATE('YYYY-MM-DD', 'YYYY-MM-DD')``. Dates come back in the
account's format without a time, as SuiteQL returns them by default.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

Record = dict[str, Any]
Predicate = Callable[[Record], bool]


class QueryError(ValueError):
    """A query the sandbox rejects with 400 ``INVALID_PARAMETER``."""


DATE_OPERATORS: dict[str, Callable[[date, date], bool]] = {
    "ON": operator.eq,
    "AFTER": operator.gt,
    "BEFORE": operator.lt,
    "ON_OR_AFTER": operator.ge,
    "ON_OR_BEFORE": operator.le,
}
STRING_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "IS": operator.eq,
    "START_WITH": str.startswith,
    "CONTAIN": operator.contains,
}
DATE_FIELDS = {"lastModifiedDate", "createdDate", "dateCreated"}
_CONDITION = re.compile(r'\s*(\w+)\s+([A-Z_]+)\s+"([^"]*)"\s*')


def format_account_date(value: datetime | date, zone: ZoneInfo) -> str:
    day = value.astimezone(zone).date() if isinstance(value, datetime) else value
    return f"{day.month}/{day.day}/{day.year}"


def parse_account_date(text: str) -> date:
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text.strip())
    if match is None:
        raise QueryError(f'Invalid date value "{text}". Use the account date format M/D/YYYY.')
    month, day, year = (int(part) for part in match.groups())
    return date(year, month, day)


def parse_q(text: str, zone: ZoneInfo) -> Predicate:
    """Compile a ``q`` filter into a predicate."""
    alternatives = re.split(r"\s+OR\s+", text.strip())
    compiled = [[_condition(piece, zone) for piece in re.split(r"\s+AND\s+", alt)] for alt in alternatives]
    return lambda record: any(all(test(record) for test in group) for group in compiled)


def _condition(text: str, zone: ZoneInfo) -> Predicate:
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise QueryError(f'Invalid search query: {text.strip()!r}. Use: field OPERATOR "value".')
    name, raw_operator, value = match.groups()
    negate = raw_operator.endswith("_NOT")
    base = raw_operator.removesuffix("_NOT")
    if name in DATE_FIELDS:
        if base not in DATE_OPERATORS:
            raise QueryError(f"Invalid search query: operator {raw_operator} does not apply to dates.")
        day = parse_account_date(value)
        compare = DATE_OPERATORS[base]

        def test_date(record: Record) -> bool:
            moment = record.get(name)
            result = moment is not None and compare(moment.astimezone(zone).date(), day)
            return result != negate

        return test_date
    if base not in STRING_OPERATORS:
        raise QueryError(f"Invalid search query: operator {raw_operator} does not apply to {name}.")
    compare_text = STRING_OPERATORS[base]
    return lambda record: compare_text(str(record.get(name, "")), value) != negate


@dataclass(frozen=True)
class SuiteQLQuery:
    columns: list[str]
    table: str
    conditions: list[tuple[str, str, Any]]
    order_by: str | None
    descending: bool


_SELECT = re.compile(
    r"\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<table>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<direction>ASC|DESC))?)?\s*",
    re.IGNORECASE | re.DOTALL,
)
_SQL_CONDITION = re.compile(
    r"\s*(?P<column>\w+)\s*(?P<op><=|>=|<>|!=|=|<|>)\s*"
    r"(?P<value>TO_DATE\(\s*'[^']*'\s*,\s*'YYYY-MM-DD'\s*\)|'(?:[^']|'')*'|-?\d+)\s*",
    re.IGNORECASE,
)
SQL_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def parse_suiteql(text: str) -> SuiteQLQuery:
    match = _SELECT.fullmatch(text)
    if match is None:
        raise QueryError(
            "Invalid or unsupported search: the sandbox reads SELECT ... FROM ... [WHERE] [ORDER BY]."
        )
    conditions = []
    where = match.group("where")
    for piece in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE) if where else []:
        condition = _SQL_CONDITION.fullmatch(piece)
        if condition is None:
            raise QueryError(f"Invalid or unsupported search: condition {piece.strip()!r}.")
        conditions.append((condition["column"].lower(), condition["op"], _sql_literal(condition["value"])))
    columns = [column.strip().lower() for column in match.group("columns").split(",")]
    order = match.group("order")
    descending = (match.group("direction") or "").upper() == "DESC"
    return SuiteQLQuery(
        columns, match.group("table").lower(), conditions, order.lower() if order else None, descending
    )


def _sql_literal(text: str) -> Any:
    if text.upper().startswith("TO_DATE"):
        return date.fromisoformat(re.search(r"'([^']*)'", text).group(1))  # type: ignore[union-attr]
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return int(text)
