"""Money as ``Decimal``, from the wire to the store. No float anywhere.

Cost Explorer sends every amount as a decimal *string* (``"12.6006410000"``). :func:`parse_amount`
accepts exactly the plain decimal forms the API uses and rejects what would silently corrupt a bill:
``NaN``, ``Infinity``, empty strings, locale forms (``"12,50"``), whitespace, and non-strings (a JSON
number has already been through a float in most JSON parsers).

The store keeps amounts in ``DECIMAL(38,10)``; an amount that does not fit that type exactly is rejected
here rather than rounded later, so every sink sees the same set of records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import ROUND_DOWN, Context, Decimal, Inexact, InvalidOperation, localcontext

__all__ = [
    "FAST_AMOUNT",
    "STORE_PRECISION",
    "STORE_SCALE",
    "AmountError",
    "allocate",
    "fmt",
    "parse_amount",
    "sum_amounts",
]

STORE_PRECISION = 38
STORE_SCALE = 10
_MAX_INTEGER_DIGITS = STORE_PRECISION - STORE_SCALE
_MAX_MAGNITUDE = Decimal(10) ** _MAX_INTEGER_DIGITS
_QUANTUM = Decimal(1).scaleb(-STORE_SCALE)
# Enough digits that no operation on store-sized amounts ever rounds.
_EXACT = Context(prec=2 * STORE_PRECISION + 10, traps=[InvalidOperation, Inexact])
# The same width without the Inexact trap: parsing compares against a rounded copy on purpose.
_WIDE = Context(prec=2 * STORE_PRECISION + 10, traps=[InvalidOperation])

# Plain decimal with an optional exponent: what Cost Explorer (and Decimal's own str) produce.
# Leading '+', whitespace, thousands separators and decimal commas are refused on purpose.
# ASCII digits only (``\d`` would admit Arabic-Indic digits); a dot needs digits on both sides.
_AMOUNT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# What Cost Explorer sends nearly always: at most 28 integer and 10 decimal digits, no exponent, no
# leading zeros. Such a string needs no further check (and ``str(Decimal(s)) == s``), so it takes the
# fast path.
_FAST_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,27})(?:\.[0-9]{1,10})?")
#: ``FAST_AMOUNT(text)`` is truthy when ``Decimal(text)`` is exact, finite and fits the store: the parser's
#: hot loop uses it inline instead of calling :func:`parse_amount` per amount.
FAST_AMOUNT = _FAST_RE.fullmatch


class AmountError(ValueError):
    """An amount string that is not an exact, finite, store-representable decimal."""


def parse_amount(text: object) -> Decimal:
    """Parse one Cost Explorer amount string into an exact ``Decimal``.

    Raises :class:`AmountError` with a short reason for anything that is not a finite decimal string that
    fits ``DECIMAL(38,10)`` without rounding. A plain-notation amount must be in the form :func:`fmt`
    writes back (no leading zeros, digits on both sides of a dot), so outputs repeat it exactly as
    received; an exponent form (``1.5E-7``, rare) is accepted and written back in plain notation.
    """
    if type(text) is str and FAST_AMOUNT(text):
        return Decimal(text)
    if not isinstance(text, str):
        raise AmountError(f"amount must be a string, got {type(text).__name__}")
    if not text:
        raise AmountError("amount is empty")
    if _AMOUNT_RE.fullmatch(text) is None:
        raise AmountError(f"amount {text[:40]!r} is not a plain decimal number")
    try:
        with localcontext(_WIDE):  # wide enough that nothing below rounds or overflows
            value = Decimal(text)
            if abs(value) >= _MAX_MAGNITUDE:
                raise AmountError(f"amount {text[:40]!r} has more than {_MAX_INTEGER_DIGITS} integer digits")
            exponent = value.as_tuple().exponent
            assert isinstance(exponent, int)  # finite: the regex admits no NaN/Infinity
            if exponent < -STORE_SCALE and value != value.quantize(_QUANTUM, rounding=ROUND_DOWN):
                # non-zero digits beyond the 10th decimal place would be rounded by the store
                raise AmountError(f"amount {text[:40]!r} has more than {STORE_SCALE} decimal places")
    except InvalidOperation as exc:
        raise AmountError(f"amount {text[:40]!r} is not a decimal number the store can hold") from exc
    if "e" not in text.lower() and fmt(value) != text:
        raise AmountError(f"amount {text[:40]!r} is not in plain canonical form (would be written {fmt(value)!r})")
    return value


def sum_amounts(values: Iterable[Decimal]) -> Decimal:
    """Exact sum; ``Decimal("0")`` for nothing."""
    total = Decimal(0)
    with localcontext(_EXACT):
        for v in values:
            total += v
    return total


def fmt(value: Decimal) -> str:
    """A decimal string for output: plain notation (never an exponent), never a float. For an amount
    parsed from plain notation this is exactly the string received (``0.0000001361`` stays so, where
    ``str()`` would write ``1.361E-7``)."""
    return format(value, "f")


def allocate(total: Decimal, weights: list[Decimal], *, scale: int = STORE_SCALE) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` so that the parts sum to ``total`` exactly.

    Each part is rounded down to ``scale`` places (largest-remainder method); the units left over go,
    one smallest unit each, to the parts with the largest remainders, ties broken by position, so the
    result is deterministic. With all weights zero, the total is split evenly the same way.
    """
    if not weights:
        raise ValueError("allocate() needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("allocate() weights must not be negative")
    if sum_amounts(weights) == 0:
        weights = [Decimal(1)] * len(weights)
    negative = total < 0
    magnitude = -total if negative else total
    # Work in whole units of the smallest quantum, as Python ints: exact whatever the size.
    units = magnitude.scaleb(scale)
    if units != units.to_integral_value():
        raise ValueError(f"total {total} has more than {scale} decimal places")
    units_total = int(units)
    # weights are decimals: scale them to integers with a common exponent
    w_exp = min(int(w.as_tuple().exponent) for w in weights)
    w_int = [int(w.scaleb(-w_exp)) for w in weights]
    w_sum = sum(w_int)
    floors = [units_total * w // w_sum for w in w_int]
    remainders = [units_total * w % w_sum for w in w_int]
    left = units_total - sum(floors)
    # the leftover units go to the largest remainders; ties to the earlier position (deterministic)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[i] += 1
    parts = [Decimal(f).scaleb(-scale) for f in floors]
    return [-p for p in parts] if negative else parts
