"""OData v2 ``$filter`` and ``$orderby`` for the SAP sandbox: parse, type-check, evaluate.

The grammar is the subset SAP Gateway services are queried with. It has the
operators ``eq``, ``ne``, ``gt``, ``ge``, ``lt``, ``le``, ``and``, ``or`` and
``not``, parentheses, the functions ``substringof``, ``startswith`` and
``endswith``, and the OData v2 literals: ``'text'``, ``datetime'...'``,
``datetimeoffset'...'``, ``time'PT..'``, ``guid'...'``, numbers with an optional
``M``/``L``/``d`` suffix, ``true``, ``false`` and ``null``. A literal whose type
does not fit the property, such as ``datetime'...'`` against an
``Edm.DateTimeOffset`` property, raises ``QueryError``. The app then responds
400, as SAP Gateway does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from interlink.connectors.odata import parse_edm_time

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<typed>(?:datetimeoffset|datetime|guid|time|X|binary)'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[MmLlDdFf]?)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    """,
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"substringof", "startswith", "endswith"}
# Literal kinds each property type accepts.
_ACCEPTS: dict[str, set[str]] = {
    "Edm.String": {"string"},
    "Edm.DateTime": {"datetime"},
    "Edm.DateTimeOffset": {"datetimeoffset"},
    "Edm.Time": {"time"},
    "Edm.Guid": {"guid"},
    "Edm.Boolean": {"boolean"},
    "Edm.Decimal": {"decimal", "integer", "double"},
    "Edm.Double": {"decimal", "integer", "double"},
    "Edm.Int32": {"integer"},
    "Edm.Int16": {"integer"},
    "Edm.Byte": {"integer"},
}


class QueryError(ValueError):
    """A query option is invalid; ``position`` is the 1-based character where the problem starts."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (Position: {position})")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class _Literal:
    kind: str
    value: Any


@dataclass(frozen=True)
class _Property:
    name: str
    edm_type: str


_Operand = _Literal | _Property


def parse_filter(text: str, properties: Mapping[str, str], type_name: str) -> Predicate:
    """Parse a ``$filter`` expression over ``properties`` (name to Edm type) into a predicate."""
    parser = _Parser(_tokenize(text), properties, type_name)
    predicate = parser.expression()
    parser.expect_end()
    return predicate


def parse_orderby(text: str, properties: Mapping[str, str], type_name: str) -> list[tuple[str, bool]]:
    """Parse ``$orderby`` into (property, descending) pairs."""
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise QueryError(f"invalid $orderby clause {part.strip()!r}; expected '<property> [asc|desc]'")
        if words[0] not in properties:
            raise QueryError(f"Property {words[0]} not found in type {type_name}")
        order.append((words[0], len(words) == 2 and words[1] == "desc"))
    return order


def sort_records(records: list[dict[str, Any]], order: Sequence[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Sort records by the ``$orderby`` pairs; nulls sort first, as in ascending SQL on SAP HANA."""
    ordered = list(records)
    for name, descending in reversed(order):
        ordered.sort(key=lambda record: _sort_key(record.get(name)), reverse=descending)
    return ordered


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (1, value.astimezone(UTC).replace(tzinfo=None))
    return (1, value)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryError(
                f"invalid token in $filter near {text[position : position + 10]!r}", position + 1
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token], properties: Mapping[str, str], type_name: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.properties = properties
        self.type_name = type_name

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise QueryError("$filter ends in the middle of an expression")
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise QueryError(f"expected {text!r} but found {token.text!r}", token.position)

    def expect_end(self) -> None:
        token = self.peek()
        if token is not None:
            raise QueryError(f"unexpected {token.text!r} after the end of the expression", token.position)

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self._next_word_is("or"):
            self.take()
            right = self.conjunction()
            left = _or(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while self._next_word_is("and"):
            self.take()
            right = self.negation()
            left = _and(left, right)
        return left

    def negation(self) -> Predicate:
        if self._next_word_is("not"):
            self.take()
            inner = self.negation()
            return lambda record: not inner(record)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.expression()
            self.expect(")")
            return inner
        if token is not None and token.kind == "word" and token.text in _FUNCTIONS:
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        name = self.take()
        self.expect("(")
        first = self.operand()
        self.expect(",")
        second = self.operand()
        self.expect(")")
        if name.text == "substringof":
            needle, haystack = first, second
        else:
            haystack, needle = first, second
        for operand in (needle, haystack):
            if _kind_of(operand) not in ("string", "null"):
                raise QueryError(f"Invalid parametertype used at function '{name.text}'", name.position)
        check: Callable[[str, str], bool] = {
            "substringof": lambda text, part: part in text,
            "startswith": lambda text, part: text.startswith(part),
            "endswith": lambda text, part: text.endswith(part),
        }[name.text]
        return lambda record: check(str(_value(haystack, record) or ""), str(_value(needle, record) or ""))

    def comparison(self) -> Predicate:
        left = self.operand()
        operator = self.take()
        if operator.text not in _COMPARISONS:
            raise QueryError(f"expected a comparison operator but found {operator.text!r}", operator.position)
        right = self.operand()
        self._check_types(left, right, operator)
        compare = _COMPARATORS[operator.text]
        return lambda record: compare(_value(left, record), _value(right, record))

    def operand(self) -> _Operand:
        token = self.take()
        if token.kind == "word":
            if token.text in ("true", "false"):
                return _Literal("boolean", token.text == "true")
            if token.text == "null":
                return _Literal("null", None)
            if token.text not in self.properties:
                raise QueryError(f"Property {token.text} not found in type {self.type_name}", token.position)
            return _Property(token.text, self.properties[token.text])
        if token.kind in ("string", "typed", "number"):
            return _parse_literal(token)
        raise QueryError(f"expected a property or a literal but found {token.text!r}", token.position)

    def _check_types(self, left: _Operand, right: _Operand, operator: _Token) -> None:
        for this, other in ((left, right), (right, left)):
            if isinstance(this, _Property) and isinstance(other, _Literal) and other.kind != "null":
                accepted = _ACCEPTS.get(this.edm_type, set())
                if other.kind not in accepted:
                    raise QueryError(
                        f"Invalid parametertype used at function '{operator.text}'", operator.position
                    )

    def _next_word_is(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word


def parse_literal(text: str) -> tuple[str, Any]:
    """Parse one OData v2 literal, as in a key predicate, into its kind and value."""
    tokens = _tokenize(text)
    if len(tokens) != 1 or tokens[0].kind not in ("string", "typed", "number"):
        raise QueryError(f"invalid key value {text!r}")
    literal = _parse_literal(tokens[0])
    return literal.kind, literal.value


def _parse_literal(token: _Token) -> _Literal:
    text = token.text
    try:
        if token.kind == "string":
            return _Literal("string", text[1:-1].replace("''", "'"))
        if token.kind == "number":
            return _parse_number(text)
        prefix, _, quoted = text.partition("'")
        body = quoted[:-1]
        if prefix == "datetimeoffset":
            moment = datetime.fromisoformat(body.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("a datetimeoffset literal needs an offset or Z")
            return _Literal("datetimeoffset", moment)
        if prefix == "datetime":
            moment = datetime.fromisoformat(body)
            if moment.tzinfo is not None:
                raise ValueError("a datetime literal carries no offset")
            return _Literal("datetime", moment)
        if prefix == "time":
            return _Literal("time", parse_edm_time(body))
        if prefix == "guid":
            return _Literal("guid", body.lower())
    except ValueError as exc:
        raise QueryError(f"invalid literal {text}: {exc}", token.position) from exc
    raise QueryError(f"literal type {text.partition(chr(39))[0]} is not supported", token.position)


def _parse_number(text: str) -> _Literal:
    suffix = text[-1] if text[-1] in "MmLlDdFf" else ""
    digits = text[:-1] if suffix else text
    try:
        value = Decimal(digits)
    except InvalidOperation as exc:
        raise ValueError(f"{text} is not a number") from exc
    if suffix in ("M", "m"):
        return _Literal("decimal", value)
    if suffix in ("D", "d", "F", "f") or "." in digits or "e" in digits.lower():
        return _Literal("double", value)
    return _Literal("integer", int(value))


def _kind_of(operand: _Operand) -> str:
    if isinstance(operand, _Literal):
        return operand.kind
    return "string" if operand.edm_type == "Edm.String" else operand.edm_type


def _value(operand: _Operand, record: Record) -> Any:
    if isinstance(operand, _Literal):
        return operand.value
    value = record.get(operand.name)
    if isinstance(value, time | bool | int | Decimal | str | datetime) or value is None:
        return value
    return str(value)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    mixed_zones = (
        isinstance(left, datetime)
        and isinstance(right, datetime)
        and (left.tzinfo is None) != (right.tzinfo is None)
    )
    if mixed_zones:
        raise QueryError("cannot compare a datetime with a datetimeoffset")
    if isinstance(left, int | Decimal) and isinstance(right, int | Decimal):
        return Decimal(left), Decimal(right)
    return left, right


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        if left is None or right is None:
            return False
        first, second = _comparable(left, right)
        return test(first, second)

    return compare


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is right
    first, second = _comparable(left, right)
    return bool(first == second)


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _equal,
    "ne": lambda left, right: not _equal(left, right),
    "gt": _ordered(lambda left, right: left > right),
    "ge": _ordered(lambda left, right: left >= right),
    "lt": _ordered(lambda left, right: left < right),
    "le": _ordered(lambda left, right: left <= right),
}


def _and(left: Predicate, right: Predicate) -> Predicate:
    return lambda record: left(record) and right(record)


def _or(left: Predicate, right: Predicate) -> Predicate:
    return lambda record: left(record) or right(record)
