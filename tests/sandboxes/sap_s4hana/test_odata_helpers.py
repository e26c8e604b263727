"""The shared OData helpers: literals, key predicates, filters and JSON date values.

Round trips go through the SAP sandbox's own parser, so a literal the helpers
write is one an OData v2 server reads back to the same value.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.connectors.odata import (
    all_of,
    any_of,
    compare,
    entity_path,
    format_edm_time,
    format_json_datetime,
    format_json_datetime_offset,
    format_literal,
    key_predicate,
    parse_edm_time,
    parse_json_date,
    parse_json_datetime,
    parse_json_datetime_offset,
    quote_string,
)
from interlink.sandbox.sap_s4hana.odata_json import parse_resource
from interlink.sandbox.sap_s4hana.query import parse_literal

keys = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        ("O'Brien", 2, "'O''Brien'"),
        (True, 2, "true"),
        (42, 4, "42"),
        (Decimal("12.50"), 2, "12.50M"),
        (Decimal("12.50"), 4, "12.50"),
        (
            datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            2,
            "datetimeoffset'2024-05-01T08:00:00Z'",
        ),
        (datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC), 4, "2024-05-01T08:00:00.123Z"),
        (datetime(2024, 5, 1, 8, 0), 2, "datetime'2024-05-01T08:00:00'"),
        (date(2024, 5, 1), 2, "datetime'2024-05-01T00:00:00'"),
        (date(2024, 5, 1), 4, "2024-05-01"),
        (time(15, 51, 4), 2, "time'PT15H51M04S'"),
        (UUID("01234567-89ab-cdef-0123-456789abcdef"), 2, "guid'01234567-89ab-cdef-0123-456789abcdef'"),
        (None, 2, "null"),
    ],
)
def test_literal_formats(value: object, version: int, expected: str) -> None:
    assert format_literal(value, version=version) == expected  # type: ignore[arg-type]


def test_v4_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        format_literal(datetime(2024, 5, 1), version=4)


def test_non_finite_decimal_has_no_literal() -> None:
    with pytest.raises(ValueError, match="not finite"):
        format_literal(Decimal("NaN"))


@given(keys)
def test_string_literal_round_trips(value: str) -> None:
    assert parse_literal(quote_string(value)) == ("string", value)


@given(instants)
def test_datetimeoffset_literal_round_trips(moment: datetime) -> None:
    kind, parsed = parse_literal(format_literal(moment))

    assert kind == "datetimeoffset"
    assert parsed == moment


@given(keys)
def test_entity_path_keeps_key_in_one_segment(key: str) -> None:
    path = entity_path("A_Product", key)

    assert "/" not in path
    assert "?" not in path
    assert "#" not in path
    assert parse_resource("API_PRODUCT_SRV", path).key == (key,)


def test_composite_key_predicate() -> None:
    predicate = key_predicate({"Equipment": "10/A", "ValidityEndDate": datetime(9999, 12, 31)})

    assert predicate == "(Equipment='10/A',ValidityEndDate=datetime'9999-12-31T00:00:00')"
    assert entity_path("Equipment", {"Equipment": "10/A"}) == "Equipment(Equipment='10%2FA')"


def test_empty_composite_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        key_predicate({})


def test_filters_join_in_parentheses() -> None:
    expression = all_of(
        "Supplier ne ''",
        any_of(compare("A", "ge", date(2024, 1, 1)), compare("B", "eq", "x")),
        "",
    )

    assert expression == ("(Supplier ne '') and ((A ge datetime'2024-01-01T00:00:00') or (B eq 'x'))")
    assert all_of("only") == "only"


@given(instants)
def test_json_datetime_offset_round_trips(moment: datetime) -> None:
    assert parse_json_datetime_offset(format_json_datetime_offset(moment)) == moment


def test_json_offset_does_not_move_the_instant() -> None:
    utc = parse_json_datetime_offset("/Date(1492098664000)/")
    shifted = parse_json_datetime_offset("/Date(1492098664000+0120)/")
    negative = parse_json_datetime_offset("/Date(-86400000-0300)/")

    assert utc == datetime(2017, 4, 13, 15, 51, 4, tzinfo=UTC)
    assert shifted == utc
    assert negative == datetime(1969, 12, 31, tzinfo=UTC)


def test_json_datetime_is_wall_clock() -> None:
    assert parse_json_datetime("/Date(1492041600000)/") == datetime(2017, 4, 13)
    assert parse_json_date("/Date(253402214400000)/") == date(9999, 12, 31)
    assert format_json_datetime(datetime(2017, 4, 13)) == "/Date(1492041600000)/"


@pytest.mark.parametrize("value", ["2017-04-13", "/Date()/", "/Date(12+1)/", "Date(12)"])
def test_invalid_json_dates_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="OData v2 JSON date"):
        parse_json_datetime_offset(value)


def test_datetime_rejects_an_offset() -> None:
    with pytest.raises(ValueError, match="carries an offset"):
        parse_json_datetime("/Date(1492041600000+0000)/")


@given(st.times().map(lambda moment: moment.replace(microsecond=0)))
def test_edm_time_round_trips(moment: time) -> None:
    assert parse_edm_time(format_edm_time(moment)) == moment


@pytest.mark.parametrize("value", ["PT", "15:51:04", "PT25X"])
def test_invalid_edm_times_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=r"Edm\.Time"):
        parse_edm_time(value)
