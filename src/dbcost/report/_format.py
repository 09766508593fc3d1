"""Text for humans, shared by the table and HTML renderers: amounts, shares, changes, times, quota cells.

Everything is formatted from the ``Decimal`` (never through a float). Displayed amounts have two decimals
and thousands separators (:func:`money`); chart tooltips carry every significant decimal (:func:`exact`);
the JSON renderer does not use these (it keeps full precision with :func:`dbcost.money.fmt`). Where an
amount is shown to a reader it carries its currency (:class:`Money`: ``$1,234.50`` for USD, ``1,234.50
EUR`` otherwise).

The quota section shows the columns of :data:`QUOTA_COLUMNS` that at least one pool fills (a report
where no pool has a breach date or a reason has no such column), each cell read from the typed
:class:`~dbcost.quota.PoolEvaluation`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

from dbcost.quota import PoolEvaluation, QuotaReport

__all__ = [
    "QUOTA_COLUMNS",
    "Money",
    "QuotaColumn",
    "age",
    "compact",
    "exact",
    "iso",
    "money",
    "pct",
    "quota_columns",
    "signed",
    "signed_pct",
    "truncate",
    "ts",
]


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def money(d: Decimal) -> str:
    """Two decimals with thousands separators, for display (JSON keeps full precision)."""
    return format(d, ",.2f")


def exact(d: Decimal) -> str:
    """The exact amount with thousands separators: every significant decimal, at least two."""
    if d == d.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN):
        return format(d, ",.2f")
    return format(d.normalize(), ",f")


#: currencies written as a symbol before the amount; every other one as its code after it
_SYMBOLS: Final = {"USD": "$"}


@dataclass(frozen=True)
class Money:
    """Amounts of one currency as text: every formatter of this module with the currency on it."""

    currency: str = "USD"

    def _wrap(self, text: str) -> str:
        symbol = _SYMBOLS.get(self.currency)
        if symbol is None:
            return f"{text} {self.currency}"
        sign = text[0] if text[:1] in "+-" else ""
        return f"{sign}{symbol}{text[len(sign):]}"

    def money(self, d: Decimal) -> str:
        """:func:`money` with the currency: ``$1,234.50``, ``-$3.00``."""
        return self._wrap(money(d))

    def exact(self, d: Decimal) -> str:
        """:func:`exact` with the currency."""
        return self._wrap(exact(d))

    def compact(self, d: Decimal) -> str:
        """:func:`compact` with the currency (``$12.5k``)."""
        return self._wrap(compact(d))

    def signed(self, d: Decimal) -> str:
        """:func:`signed` with the currency (``+$12.00``)."""
        return self._wrap(signed(d))


def pct(share: Decimal) -> str:
    """A ratio (0.1234) as a percentage with one decimal ("12.3 %")."""
    return f"{share * 100:.1f} %"


def signed(d: Decimal) -> str:
    """:func:`money` with a ``+`` on an increase."""
    return ("+" if d > 0 else "") + money(d)


def signed_pct(p: Decimal | None) -> str:
    """A change in percent with one decimal and its sign ("+14.7 %"); "new" when there was nothing before."""
    if p is None:
        return "new"
    text = f"{p:.1f}"
    if text.lstrip("-") == "0.0":  # a change that rounds away shows no sign
        return "0.0 %"
    return ("+" if p > 0 else "") + text + " %"


def compact(d: Decimal) -> str:
    """A short label for a chart ("12.5k", "1.2M", "350"), formatted from the Decimal."""
    a = abs(d)
    for exp, suffix in ((9, "B"), (6, "M"), (3, "k")):
        if a >= Decimal(1).scaleb(exp):
            text = f"{d.scaleb(-exp):.1f}"
            return text.removesuffix(".0") + suffix
    if a >= 100:
        return f"{d:.0f}"
    return f"{d:.2f}".rstrip("0").rstrip(".") or "0"


def ts(value: dt.datetime | None) -> str:
    """A timestamp to the minute, in UTC when it is aware; "never" for None."""
    if value is None:
        return "never"
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M")


def age(now: dt.datetime, then: dt.datetime | None) -> str:
    """How long ago ``then`` was ("5 min ago", "3 h ago", "4 days ago"); empty when it cannot be said."""
    if then is None or (now.tzinfo is None) != (then.tzinfo is None):
        return ""
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ----------------------------------------------------------------------------------------------- quota


@dataclass(frozen=True)
class QuotaColumn:
    """One column of the quota section: heading, kind, and the cell text of a pool (None: nothing to show).

    ``amount`` columns are right-aligned and show "-" for nothing; ``status`` cells are badges in HTML.
    """

    heading: str
    kind: Literal["text", "amount", "status"]
    text: Callable[[PoolEvaluation, Money], str | None]

    def cell(self, pool: PoolEvaluation, fm: Money | None = None) -> str:
        """The display text of ``pool`` in this column (amounts in ``fm``'s currency, USD by default)."""
        text = self.text(pool, fm or Money())
        if text is None:
            return "-" if self.kind == "amount" else ""
        return text


def _pct_cell(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.1f} %"


#: The quota columns shown; a pool's other fields (burn rate, days, categories, ...) are left out.
QUOTA_COLUMNS: Final[tuple[QuotaColumn, ...]] = (
    QuotaColumn("Pool", "text", lambda p, fm: p.pool),
    QuotaColumn("Team", "text", lambda p, fm: p.team),
    QuotaColumn("Status", "status", lambda p, fm: p.status),
    QuotaColumn("Budget", "amount", lambda p, fm: fm.money(p.budget)),
    QuotaColumn("Actual", "amount", lambda p, fm: fm.money(p.actual)),
    QuotaColumn("Used", "amount", lambda p, fm: _pct_cell(p.pct_of_budget)),
    QuotaColumn("Forecast", "amount", lambda p, fm: fm.money(p.forecast)),
    QuotaColumn("Forecast used", "amount", lambda p, fm: _pct_cell(p.forecast_pct_of_budget)),
    QuotaColumn("Breach on", "text", lambda p, fm: iso(p.projected_breach_date)),
    QuotaColumn("Estimated", "text", lambda p, fm: "yes" if p.estimated else "no"),
    QuotaColumn("Reasons", "text", lambda p, fm: "; ".join(p.reasons) or None),
)


def quota_columns(quota: QuotaReport) -> list[QuotaColumn]:
    """The columns of :data:`QUOTA_COLUMNS` that at least one pool of ``quota`` fills."""
    return [c for c in QUOTA_COLUMNS if any(c.text(p, Money()) not in (None, "") for p in quota.pools)]
