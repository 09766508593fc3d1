"""Money parsing and allocation: exact Decimal, strict forms, conservation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbcost.money import AmountError, allocate, fmt, parse_amount, sum_amounts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.6006410000", Decimal("12.6006410000")),
        ("0", Decimal("0")),
        ("-0.5", Decimal("-0.5")),
        ("9312771.098461578", Decimal("9312771.098461578")),
        ("1E-10", Decimal("1E-10")),
        ("0.0000001361", Decimal("1.361E-7")),
        ("12.50000000000", Decimal("12.50000000000")),
    ],
)
def test_parse_amount_accepts_plain_decimals(text: str, expected: Decimal) -> None:
    """Decimal strings parse exactly, trailing zeros kept; plain ones are written back exactly as received."""
    value = parse_amount(text)
    assert value == expected
    assert str(value) == str(expected)
    if "E" not in text:
        assert fmt(value) == text


@pytest.mark.parametrize(
    "text",
    ["NaN", "nan", "Infinity", "-Infinity", "inf", "", " 1", "1 ", "12,50", "1,234.50", "+1", "1e-11",
     "0.00000000001", "1" + "0" * 28, "abc", "1.2.3", "--1", ".5", "1.", "007", "1_000", "\u0661\u0662",
     "1234567890123456789.12345678901", "1" * 20 + "." + "1" * 11],
)
def test_parse_amount_rejects_corrupting_forms(text: str) -> None:
    """NaN, infinities, empty, locale forms, whitespace and unstorable precision are refused."""
    with pytest.raises(AmountError):
        parse_amount(text)


@pytest.mark.parametrize("value", [None, 1.5, 3, ["1"], {"Amount": "1"}])
def test_parse_amount_rejects_non_strings(value: object) -> None:
    """A JSON number has been through a float already: only strings are amounts."""
    with pytest.raises(AmountError):
        parse_amount(value)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**27), max_value=10**27))
def test_parse_amount_round_trips_any_store_sized_decimal(value: Decimal) -> None:
    """Any finite decimal with at most 10 places survives str -> parse exactly."""
    assert parse_amount(format(value, "f")) == value


@given(st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**27), max_value=10**27))
def test_plain_amounts_are_written_back_exactly_as_received(value: Decimal) -> None:
    """Any store-sized amount in plain notation round-trips to the identical string (no 1.361E-7)."""
    text = fmt(value)
    assert fmt(parse_amount(text)) == text


@given(st.text(max_size=30))
def test_parse_amount_never_raises_anything_but_amount_error(text: str) -> None:
    """Arbitrary text either parses to a finite Decimal or raises AmountError, nothing else."""
    try:
        value = parse_amount(text)
    except AmountError:
        return
    assert value.is_finite()


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**9), max_value=10**9),
    st.lists(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=0, max_value=10**6),
             min_size=1, max_size=30),
)
def test_allocate_conserves_the_total_exactly(total: Decimal, weights: list[Decimal]) -> None:
    """Allocated parts always sum to the total to the last decimal, whatever the weights."""
    parts = allocate(total, weights)
    assert sum_amounts(parts) == total
    assert len(parts) == len(weights)


def test_allocate_is_proportional_and_deterministic() -> None:
    """Leftover cents go to the largest remainders, ties to the first position, the same every time."""
    assert allocate(Decimal("10.00"), [Decimal(1)] * 3, scale=2) == [Decimal("3.34"), Decimal("3.33"),
                                                                     Decimal("3.33")]
    assert allocate(Decimal("100"), [Decimal(3), Decimal(1)], scale=2) == [Decimal("75.00"), Decimal("25.00")]
    assert allocate(Decimal("1"), [Decimal(0), Decimal(0)], scale=1) == [Decimal("0.5"), Decimal("0.5")]


def test_fmt_never_uses_exponents() -> None:
    """JSON amounts are plain decimal strings."""
    assert fmt(Decimal("1E-10")) == "0.0000000001"
    assert fmt(Decimal("1E+3")) == "1000"
    assert fmt(Decimal("12.5000")) == "12.5000"
