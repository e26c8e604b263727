"""The OData query options the sandbox understands: ``$filter``, ``$select``, ``$top``, ``$skiptoken``.

``$filter`` accepts comparisons (``eq ne gt ge lt le``) of a property with a
literal, joined by ``and`` / ``or`` (``and`` binds tighter) and grouped with
parentheses. Literals are OData v4 ones: unquoted date-times
(``2026-01-01T00:00:00Z``) and dates, GUIDs, ``'text'`` with ``''`` for a
quote, numbers, ``true``, ``false`` and ``null``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class QueryError(ValueError):
    """An OData query option the sandbox cannot evaluate; answered with 400."""


_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<string>'(?:[^']|'')*')|(?P<word>[^\s()']+))")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryError(f"invalid $filter near {text[position : position + 20]!r}")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


def parse_literal(word: str) -> Any:
    if word.startswith("'"):
        return word[1:-1].replace("''", "'")
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})", word):
        return datetime.fromisoformat(word.replace("Z", "+00:00")).astimezone(UTC)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
        return date.fromisoformat(word)
    try:
        return uuid.UUID(word)
    except ValueError:
        pass
    try:
        return Decimal(word)
    except InvalidOperation as exc:
        raise QueryError(f"invalid literal {word!r} in $filter") from exc


class _Parser:
    def __init__(self, tokens: list[str], properties: set[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.properties = properties

    def next(self) -> str:
        if self.position >= len(self.tokens):
            raise QueryError("$filter ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()!r} in $filter")
        return predicate

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == "or":
            self.next()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda record: any(term(record) for term in terms))

    def conjunction(self) -> Predicate:
        terms = [self.comparison()]
        while self.peek() == "and":
            self.next()
            terms.append(self.comparison())
        return terms[0] if len(terms) == 1 else (lambda record: all(term(record) for term in terms))

    def comparison(self) -> Predicate:
        word = self.next()
        if word == "(":
            inner = self.disjunction()
            if self.next() != ")":
                raise QueryError("missing ')' in $filter")
            return inner
        name = word
        if name not in self.properties:
            raise QueryError(f"Could not find a property named '{name}' on type 'Microsoft.NAV'.")
        operator = self.next()
        if operator not in _OPERATORS:
            raise QueryError(f"unsupported operator {operator!r} in $filter; valid: {', '.join(_OPERATORS)}")
        literal = parse_literal(self.next())
        compare = _OPERATORS[operator]
        return lambda record: compare(_comparable(record.get(name), literal), literal)


def _comparable(value: Any, literal: Any) -> Any:
    if isinstance(literal, uuid.UUID) and isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    if isinstance(literal, Decimal) and isinstance(value, int | Decimal):
        return Decimal(value)
    return value


def parse_filter(text: str, properties: set[str]) -> Predicate:
    """Compile ``$filter`` into a predicate over records with the given properties."""
    return _Parser(tokenize(text), properties).parse()


def filter_keys(text: str) -> set[str] | None:
    """Return the ids that a ``$filter`` of ``id eq <guid>`` terms joined by ``or`` names, or None.

    The sandbox looks those records up by key, as a database would with its
    primary key, instead of testing every record of the entity set.
    """
    tokens = tokenize(text)
    if len(tokens) % 4 != 3:
        return None
    keys: set[str] = set()
    for position in range(0, len(tokens), 4):
        name, operator, literal = tokens[position : position + 3]
        joined = position + 3 == len(tokens) or tokens[position + 3] == "or"
        if name != "id" or operator != "eq" or not joined:
            return None
        try:
            keys.add(str(uuid.UUID(literal)))
        except ValueError:
            return None
    return keys


def select(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if not fields:
        return record
    return {key: value for key, value in record.items() if key in fields or key.startswith("@odata")}
