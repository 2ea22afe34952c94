"""Money parsing is exact: what cannot be represented in minor units is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("152.40", "EUR", 15240),
        (152.4, "EUR", 15240),
        (10, "EUR", 1000),
        ("0.01", "EUR", 1),
        ("1000", "JPY", 1000),
        ("0.00000001", "BTC", 1),
        ("1.234", "KWD", 1234),
        ("1E+2", "EUR", 10000),
    ],
)
def test_exact_amounts_parse_to_minor_units(value, currency, minor):
    assert parse_minor(value, currency) == minor


@pytest.mark.parametrize(
    "value",
    [
        "0.001",
        0.001,
        -5,
        "-5",
        1e309,
        "1e309",
        "abc",
        "",
        " ",
        True,
        None,
        [],
        {},
        "NaN",
        "Infinity",
        "0x10",
        "1_000",
        "+5",
        "1e20",
        10**20,
    ],
)
def test_amounts_that_are_not_money_are_refused(value):
    with pytest.raises(MoneyError):
        parse_minor(value, "EUR")


def test_negative_only_where_allowed():
    assert parse_minor("-5.25", "EUR", allow_negative=True) == -525


def test_jpy_has_no_decimals():
    with pytest.raises(MoneyError, match="0 decimal"):
        parse_minor("1.5", "JPY")


def test_unknown_currency_is_refused():
    with pytest.raises(MoneyError):
        normalize_currency("XXX")
    with pytest.raises(MoneyError):
        parse_minor("1", "XXX")


def test_format_uses_the_currency_exponent():
    assert format_minor(15240, "EUR") == "152.40"
    assert format_minor(-5, "EUR") == "-0.05"
    assert format_minor(1000, "JPY") == "1000"
    assert format_minor(1, "BTC") == "0.00000001"


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_format_then_parse_round_trips(minor):
    assert parse_minor(format_minor(minor, "EUR"), "EUR", allow_negative=True) == minor
