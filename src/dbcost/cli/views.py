"""What the commands draw: progress on stderr, results (tables, JSON, CSV) on stdout or ``--output``.

Progress is rich only where :func:`~dbcost.cli.app.live_progress` allows it (a terminal without JSON log
lines); elsewhere it is nothing (a fetch) or one plain line per finished unit (a run), so logs and CI output
stay readable.

Results follow one convention (:class:`Out`): ``--format table|json|csv`` (``html`` for ``report``,
``jsonl`` for ``fetch``/``export``) and ``--output PATH|-`` (``-``, the default, is stdout); a file is written
atomically (complete or not at all). JSON is indented (orjson) and its shape is the library's ``to_json``;
CSV is one header line and one row per item, amounts as exact decimal strings. A table on a terminal fits
the terminal's width (names fold, amounts are never cut; low-priority columns are left out first and the
caption says which: :func:`dbcost.report.table.print_table`); a table in a file or a pipe is the full
table at its natural width, whatever the terminal, so what a script or a diff reads is stable.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console

import dbcost
import dbcost._files
import dbcost.plan
from dbcost.cli.app import EXIT_FAILED, EXIT_OK, EXIT_QUARANTINED, err_console, say

__all__ = [
    "ATTRIBUTION_CSV",
    "PLAN_COLUMNS",
    "Out",
    "RunProgress",
    "attribution_rows",
    "csv_text",
    "page_status",
    "print_attribution",
    "print_attribution_range",
    "print_plan",
    "print_table",
    "report_run",
    "write_summary",
]


# ----------------------------------------------------------------------------------------------- progress

class page_status:
    """A rich status spinner on a terminal; nothing otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self._status: Any = err_console.status("fetching…") if enabled else None

    def __enter__(self) -> Callable[[str], None]:
        if self._status is None:
            return lambda _msg: None
        self._status.__enter__()
        return self._status.update  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)


class RunProgress:
    """Rich progress bars on a terminal; one plain line per finished unit otherwise."""

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._total = 0
        self._stats: dict[str, dbcost.Stats] = {}

    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]units"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"), console=err_console, transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def _info(self) -> str:
        st = dbcost.Stats()
        for s in self._stats.values():
            st.add(s)
        return (f"pages {st.pages}  records {st.records}  requests {st.requests}  ${st.cost_usd}  "
                f"throttled {st.throttled}  quarantined {st.quarantined}")

    def planned(self, plan: dbcost.plan.Plan, skipped: int) -> None:
        self._total = len(plan.units)
        self._done = skipped
        if self._progress is not None:
            self._task = self._progress.add_task("units", total=self._total, completed=skipped, info="")
        else:
            say(f"dbcost: plan {plan.plan_id}: {self._total} unit(s), {skipped} already done")

    def page(self, unit: dbcost.plan.WorkUnit, page: int, stats: dbcost.Stats) -> None:
        self._stats[unit.target] = stats
        if self._progress is not None:
            self._progress.update(self._task, info=self._info())

    def unit_done(self, unit: dbcost.plan.WorkUnit, diff: Any, error: str | None, stats: dbcost.Stats) -> None:
        self._stats[unit.target] = stats
        self._done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=self._info())
        elif error is None:
            say(
                f"dbcost: unit {self._done}/{self._total} done: {unit.target} {unit.query.granularity} "
                f"{unit.start}..{unit.end} rows={diff.rows} new={diff.inserted} changed={diff.changed} "
                f"deleted={diff.deleted} quarantined={diff.quarantined} | {self._info()}")
        else:
            say(f"dbcost: unit {unit.target} {unit.start}..{unit.end} failed: {error}")


# ------------------------------------------------------------------------------------------------ output

class Out:
    """Where a command's result goes (``--output PATH|-``) and how its tables are drawn (module docstring)."""

    def __init__(self, path: str | None) -> None:
        self.path = None if path is None or path == "-" else path

    @property
    def terminal(self) -> bool:
        """The result goes to stdout and stdout is a terminal: tables fit its width, with colour."""
        return self.path is None and sys.stdout.isatty()

    def text(self, text: str, *, newline: bool = True) -> None:
        """Write ``text`` (ending in a newline unless ``newline=False``) to stdout or, atomically, the file."""
        with dbcost._files.AtomicOutput(self.path, binary=False) as f:
            f.write(text if text.endswith("\n") or not newline else text + "\n")

    def json(self, data: Any) -> None:
        import orjson

        self.text(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())

    def csv(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.text(csv_text(header, rows))

    def rows(self, items: Sequence[dict[str, Any]]) -> None:
        """CSV of JSON objects (one row each, the first one's keys as the header; a nested value is its
        compact JSON): the ``--format csv`` of a command whose JSON is a list of flat-ish objects."""
        import orjson

        header = list(dict.fromkeys(k for item in items for k in item))
        self.csv(header, ([orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v
                           for v in (item.get(k) for k in header)] for item in items))

    def draw(self, render: Callable[[Console], None]) -> None:
        """Call ``render`` with a console: the terminal's, or one at the natural width whose text is written
        to the file or the pipe."""
        if self.terminal:
            render(Console(highlight=False, width=shutil.get_terminal_size().columns))
            return
        from dbcost.report.table import NATURAL_WIDTH

        buf = io.StringIO()
        render(Console(file=buf, width=NATURAL_WIDTH, color_system=None, force_terminal=False, highlight=False,
                       soft_wrap=False))
        self.text("\n".join(line.rstrip() for line in buf.getvalue().splitlines()))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV (RFC 4180, ``\\r\\n`` line ends as the csv module writes them) of ``header`` and ``rows``; a
    Decimal is written exactly as :func:`dbcost.money.fmt` does, None as an empty field."""
    import dbcost.money

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else dbcost.money.fmt(v) if isinstance(v, Decimal) else v for v in row])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ tables

def print_table(f: Any, query: dbcost.CostQuery, records: list[dbcost.CostRecord]) -> None:
    """``fetch --format table``: one row per record, one column per group key and metric, and a total row
    per metric whose records share one unit; at its natural width (the fetch writes a file or a pipe)."""
    from rich.table import Table
    from rich.text import Text

    import dbcost.money
    from dbcost.report.table import NATURAL_WIDTH
    from dbcost.report.table import print_table as fit

    table = Table(show_lines=False)
    for col in ("period", *query.columns):
        table.add_column(col, overflow="fold")
    for m in query.metrics:
        table.add_column(m, justify="right", no_wrap=True)
    table.add_column("est.")
    for r in records:
        table.add_row(
            r.period_start,
            *(Text(r.keys.get(c, "")) for c in query.columns),
            *(f"{r.metrics[m].amount} {r.metrics[m].unit}" if m in r.metrics else "" for m in query.metrics),
            "yes" if r.estimated else "",
        )
    totals = []
    for m in query.metrics:
        units = {r.metrics[m].unit for r in records if m in r.metrics}
        amounts = [r.metrics[m].amount for r in records if m in r.metrics]
        totals.append(f"{dbcost.money.fmt(dbcost.money.sum_amounts(amounts))} {units.pop()}"
                      if len(units) == 1 else "")
    if records:
        table.add_section()
        table.add_row(Text("total", style="bold"), *("" for _ in query.columns), *totals, "")
    buf = io.StringIO()
    fit(Console(file=buf, width=NATURAL_WIDTH, color_system=None, highlight=False), table)
    f.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")


PLAN_COLUMNS = ("target", "granularity", "start", "end", "dataset")


def print_plan(plan: dbcost.plan.Plan, fmt: str, out: Out) -> None:
    """``--dry-run``: the units and what they will cost, as a table, JSON or CSV (one row per unit)."""
    units = dbcost.plan.describe_units(plan.units)
    if fmt == "json":
        out.json({
            "plan_id": plan.plan_id, "shard": str(plan.shard) if plan.shard else None, "units": units,
            "min_requests": plan.min_requests, "expected_requests": plan.expected_requests,
            "min_cost_usd": str(plan.min_cost_usd), "expected_cost_usd": str(plan.expected_cost_usd),
        })
        return
    if fmt == "csv":
        out.csv(PLAN_COLUMNS, ([u[c] for c in PLAN_COLUMNS] for u in units))
        return
    from rich.table import Table

    from dbcost.report.table import print_table as fit

    table = Table(title=f"plan {plan.plan_id}" + (f" shard {plan.shard}" if plan.shard else ""),
                  title_justify="left")
    for col in PLAN_COLUMNS:
        table.add_column(col, overflow="fold")
    for u in units:
        table.add_row(u["target"], u["granularity"], u["start"], u["end"], u["dataset"])
    table.add_section()
    table.add_row(f"{len(units)} unit(s)", "", "", "", "")

    def render(console: Console) -> None:
        fit(console, table, drop=("dataset", "granularity"))
        console.print(f"{len(units)} unit(s); at least {plan.min_requests} request(s) (${plan.min_cost_usd}), "
                      f"expected {plan.expected_requests} (${plan.expected_cost_usd}) at $0.01 per request/page",
                      markup=False)

    out.draw(render)


#: ``attribute --format csv`` (and ``report``): one row per team, cluster and category; the rows of a month
#: sum to its total exactly
ATTRIBUTION_CSV = ("month", "team", "cluster", "category", "amount", "owner_source")


def attribution_rows(a: Any) -> Iterable[tuple[Any, ...]]:
    """The long form of one month's attribution (:data:`ATTRIBUTION_CSV`), unattributed clusters included."""
    owned = [(t.team, c) for t in a.teams for c in t.clusters]
    from dbcost.attribution import model

    owned += [(model.UNATTRIBUTED, c) for c in a.unattributed_clusters]
    for team, c in owned:
        for cat, amount in sorted(c.categories.items()):
            yield (a.month, team, c.cluster, cat, amount, c.source)


_CATEGORIES = ("compute", "storage", "io", "backup", "data_transfer", "other", "shared")


def print_attribution(a: Any, fmt: str, out: Out) -> None:
    """``attribute``: spend per team (with the total), the top clusters by category, unclassified usage."""
    if fmt == "json":
        out.json(a.to_json())
        return
    if fmt == "csv":
        out.csv(ATTRIBUTION_CSV, attribution_rows(a))
        return
    from rich.table import Table
    from rich.text import Text

    from dbcost.report.table import print_table as fit

    def share(amount: Decimal) -> str:
        return f"{(amount / a.total * 100) if a.total else 0:.1f}%"

    teams = Table(title=f"Database spend {a.month} ({a.metric}, USD)", title_justify="left")
    teams.add_column("team", overflow="fold")
    for name in ("amount", "share", "clusters"):
        teams.add_column(name, justify="right", no_wrap=True)
    for t in a.teams:
        teams.add_row(Text(t.team), f"{t.amount:,.2f}", share(t.amount), str(len(t.clusters)))
    teams.add_row("unattributed", f"{a.unattributed:,.2f}", share(a.unattributed), str(len(a.unattributed_clusters)),
                  style="yellow", end_section=True)
    teams.add_row(Text("total", style="bold"), f"{a.total:,.2f}", share(a.total) if a.total else "0.0%",
                  str(sum(len(t.clusters) for t in a.teams) + len(a.unattributed_clusters)))
    clusters = Table(title="Top clusters by category (USD)", title_justify="left")
    clusters.add_column("team", overflow="fold")
    clusters.add_column("cluster", overflow="fold")
    clusters.add_column("amount", justify="right", no_wrap=True)
    for cat in _CATEGORIES:
        clusters.add_column(cat, justify="right", no_wrap=True)
    rows = sorted(((t.team, c) for t in a.teams for c in t.clusters), key=lambda x: -x[1].amount)[:25]
    for team, c in rows:
        clusters.add_row(Text(team), Text(c.cluster), f"{c.amount:,.2f}",
                         *(f"{c.categories.get(k, 0):,.2f}" for k in _CATEGORIES))
    un = None
    if a.unclassified_usage_types:
        un = Table(title="Unclassified usage types (category 'other', USD)", title_justify="left")
        un.add_column("service", overflow="fold")
        un.add_column("usage type", overflow="fold")
        un.add_column("amount", justify="right", no_wrap=True)
        for u in a.unclassified_usage_types[:20]:
            un.add_row(Text(u.service), Text(u.usage_type), f"{u.amount:,.2f}")

    def render(console: Console) -> None:
        fit(console, teams, drop=("clusters",))
        fit(console, clusters, drop=(*reversed(_CATEGORIES), "team"))
        if un is not None:
            fit(console, un)
        if a.estimated_amount:
            console.print(f"estimated (month still open): {a.estimated_amount:,.2f} USD of {a.total:,.2f}")

    out.draw(render)


def print_attribution_range(attributions: Sequence[Any], metric: str, fmt: str, out: Out) -> None:
    """``attribute --start-month/--months``: one row per month and a total row; JSON is the list of months."""
    if fmt == "json":
        out.json([a.to_json() for a in attributions])
        return
    if fmt == "csv":
        out.csv(ATTRIBUTION_CSV, (row for a in attributions for row in attribution_rows(a)))
        return
    from rich.table import Table
    from rich.text import Text

    import dbcost.money
    from dbcost.report.table import print_table as fit

    first, last = attributions[0].month, attributions[-1].month
    table = Table(title=f"Database spend {first} to {last} ({metric}, USD)", title_justify="left")
    for name in ("month", "total", "attributed", "unattributed", "estimated", "teams", "largest team"):
        if name in ("month", "largest team"):
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right", no_wrap=True)
    for a in attributions:
        top = max(a.teams, key=lambda t: (t.amount, t.team), default=None)
        table.add_row(a.month, f"{a.total:,.2f}", f"{a.total - a.unattributed:,.2f}", f"{a.unattributed:,.2f}",
                      f"{a.estimated_amount:,.2f}", str(len(a.teams)),
                      Text(f"{top.team} ({top.amount:,.2f})") if top is not None else "-")

    def total(values: Iterable[Decimal]) -> str:
        return f"{dbcost.money.sum_amounts(list(values)):,.2f}"

    table.add_section()
    table.add_row(Text("total", style="bold"), total(a.total for a in attributions),
                  total(a.total - a.unattributed for a in attributions), total(a.unattributed for a in attributions),
                  total(a.estimated_amount for a in attributions), "", "")
    out.draw(lambda console: fit(console, table, drop=("largest team", "teams", "estimated")))


# --------------------------------------------------------------------------------------------- summaries

def report_run(outcome: dbcost.RunOutcome, *, strict: bool, command: str, fmt: str = "table",
               out: Out | None = None) -> int:
    """A backfill/sync run's summary -> its exit code: a line on stderr always; with ``--format json`` (or
    ``--json``) its JSON, with ``--format csv`` the same fields as one CSV row, on stdout or ``--output``."""
    if fmt == "json":
        (out or Out(None)).json(outcome.to_json())
    elif fmt == "csv":
        (out or Out(None)).rows([outcome.to_json()])
    st = outcome.stats
    say(
        f"dbcost {command}: {outcome.status}: units {outcome.units_done} done, {outcome.units_skipped} skipped "
        f"(earlier run), {outcome.units_failed} failed, {outcome.units_stopped} stopped | rows new "
        f"{outcome.inserted} changed {outcome.changed} deleted {outcome.deleted} | {st.summary_line()}",
        level="info" if outcome.ok else "error",
    )
    if outcome.stopped_reason:
        say(f"dbcost: stopped: {outcome.stopped_reason}; run again with --resume to continue")
    if outcome.incomplete_targets:
        say(f"dbcost: incomplete target(s): {', '.join(outcome.incomplete_targets)}")
        for e in outcome.errors[:5]:
            say(f"  {e}")
    if not outcome.ok:
        return EXIT_FAILED
    if strict and outcome.quarantined:
        return EXIT_QUARANTINED
    return EXIT_OK


def write_summary(path: str, stats: dbcost.Stats, *, extra: dict[str, Any]) -> None:
    """``fetch --summary-json``: the run's counters; a write failure is said, not fatal."""
    try:
        dbcost._files.write_json(path, {**stats.to_json(), **extra})
    except OSError as exc:
        say(f"dbcost: cannot write summary {path}: {exc.strerror}")
