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

import contextlib
import csv
import datetime as dt
import io
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import dbcost
import dbcost._files
from dbcost.cli.app import EXIT_FAILED, EXIT_OK, EXIT_QUARANTINED, err_console, say

if TYPE_CHECKING:  # rich is imported by what draws, the plan's module by what prints a plan
    from rich.console import Console

    import dbcost.plan

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
        self._status: Any = err_console().status("fetching…") if enabled else None

    def __enter__(self) -> Callable[[str], None]:
        if self._status is None:
            return lambda _msg: None
        self._status.__enter__()
        return self._status.update  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)


#: in a pipe, a line of the run's progress at most this often while no unit finishes
PLAIN_EVERY_S = 15.0


class RunProgress:
    """A run's progress over pages, not only units (units start together and end late; pages move).

    On a terminal (rich, on stderr): a bar over the pages the plan expects (grown when a unit needs more:
    at least one page is still to come for every unit that has not started), with pages done/expected, the
    share, the elapsed time and an ETA, and under it one line of the run's counters (units done/total,
    requests, dollars, records, throttled, quarantined) cut to the terminal's width, never wrapped, so
    nothing scrolls at 80 columns. A failed unit is one line above the bar.

    Elsewhere (a pipe, CI, ``--log-format json``): one plain line per finished unit, which says that unit's
    own counts (pages, rows, quarantined) and, after ``|``, the run's so far (pages of expected, requests,
    dollars, throttled, quarantined); the requests of one unit are not separable (units of a target share
    its client), so they are the run's only. While no unit finishes, a line of the run's pages every
    :data:`PLAIN_EVERY_S` seconds.
    """

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._total = 0
        self._expected = 0
        self._pages = 0
        self._left = 0  # units this run fetches (the plan's, less those an earlier run completed)
        self._unit_pages: dict[str, int] = {}  # pages of every unit this run has started
        self._share: dict[str, float] = {}  # the share of a started unit's window its pages reached
        self._finished: set[str] = set()
        self._started = self._said = time.monotonic()
        self._stats: dict[str, dbcost.Stats] = {}

    def __enter__(self) -> RunProgress:
        return self

    def _start(self) -> None:
        """The live display starts with the plan (a command that fetches nothing draws nothing)."""
        if self.live and self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.text import Text

            owner = self

            class _TwoLines(Progress):
                def get_renderables(self) -> Any:
                    yield self.make_tasks_table(self.tasks)
                    yield Text(owner._info(), no_wrap=True, overflow="ellipsis")

            self._progress = _TwoLines(
                TextColumn("[bold]pages"), BarColumn(bar_width=None), MofNCompleteColumn(), TaskProgressColumn(),
                TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"), console=err_console(), transient=False,
            )
            self._progress.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def _run_stats(self) -> dbcost.Stats:
        st = dbcost.Stats()
        for s in self._stats.values():
            st.add(s)
        return st

    def _info(self) -> str:
        st = self._run_stats()
        return (f"units {self._done}/{self._total} · requests {st.requests} · ${st.cost_usd} · records "
                f"{st.records} · throttled {st.throttled} · quarantined {st.quarantined}")

    def _expected_total(self) -> int:
        """Pages this run will fetch, as now known: a finished unit's own count; a started one's pages over
        the share of its window they reached (at least one more); a unit not started as the average
        finished (else started) unit, else as the plan expected; never less than the pages done."""
        est: list[float] = []
        finished: list[int] = []
        for uid, pages in self._unit_pages.items():
            if uid in self._finished:
                finished.append(pages)
                est.append(pages)
            else:
                share = self._share.get(uid)
                est.append(max(pages + 1, pages / share) if share else pages + 1)
        per_unit = (sum(finished) / len(finished) if finished else sum(est) / len(est) if est
                    else self._expected / self._left if self._left else 1.0)
        total = sum(est) + per_unit * max(0, self._left - len(self._unit_pages))
        return max(self._pages, math.ceil(total))

    def planned(self, plan: dbcost.plan.Plan, skipped: int) -> None:
        self._started = self._said = time.monotonic()
        self._total = len(plan.units)
        self._done = skipped
        self._start()
        left = self._left = self._total - skipped
        # the plan's expectation covers every unit; the units an earlier run completed are not fetched again
        self._expected = max(left, round(plan.expected_requests * left / self._total)) if self._total else 0
        if self._progress is not None:
            if self._task is not None:  # a second plan in the same command (a sync that starts over): one bar
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task("pages", total=self._expected_total(), completed=0, eta="-:--:--")
        else:
            say(f"dbcost: plan {plan.plan_id}: {self._total} unit(s), {skipped} already done, about "
                f"{self._expected} page(s) to fetch")

    def page(self, unit: dbcost.plan.WorkUnit, page: int, stats: dbcost.Stats, *,
             through: str | None = None) -> None:
        self._stats[unit.target] = stats
        self._pages += 1
        self._unit_pages[unit.unit_id] = self._unit_pages.get(unit.unit_id, 0) + 1
        if through is not None:
            with contextlib.suppress(ValueError):
                reached = (dt.date.fromisoformat(through[:10]) - unit.start).days + 1
                self._share[unit.unit_id] = min(1.0, max(reached, 1) / max(unit.days, 1))
        if self._progress is not None:
            self._update()
        elif time.monotonic() - self._said >= PLAIN_EVERY_S:  # a pipe is not left silent for a long unit
            self._said = time.monotonic()
            st = self._run_stats()
            say(f"dbcost: progress: pages {self._pages}/{self._expected_total()} (expected), units "
                f"{self._done}/{self._total} done, requests {st.requests} ${st.cost_usd}")

    def _update(self) -> None:
        """The bar's pages and ETA: the time so far times what is left over what is done (rich's own ETA
        restarts whenever the total changes, and the total is an estimate that moves)."""
        total = self._expected_total()
        eta = "-:--:--"
        if self._pages:
            left = (time.monotonic() - self._started) * (total - self._pages) / self._pages
            eta = str(dt.timedelta(seconds=round(left)))
        self._progress.update(self._task, completed=self._pages, total=total, eta=eta)

    def unit_done(self, unit: dbcost.plan.WorkUnit, diff: Any, error: str | None, stats: dbcost.Stats) -> None:
        self._stats[unit.target] = stats
        self._done += 1
        self._finished.add(unit.unit_id)
        pages = self._unit_pages.setdefault(unit.unit_id, 0)
        where = f"{unit.target} {unit.query.granularity} {unit.start}..{unit.end}"
        if self._progress is not None:
            self._update()
            if error is not None:
                self._progress.console.print(f"unit {where} failed: {error}", markup=False, highlight=False)
            return
        st = self._run_stats()
        run = (f"run: pages {self._pages}/{self._expected_total()} requests {st.requests} ${st.cost_usd} "
               f"throttled {st.throttled} quarantined {st.quarantined}")
        if error is None:
            say(f"dbcost: unit {self._done}/{self._total} done: {where}: pages {pages} rows {diff.rows} "
                f"(new {diff.inserted} changed {diff.changed} deleted {diff.deleted}) quarantined "
                f"{diff.quarantined} | {run}")
        else:
            say(f"dbcost: unit {self._done}/{self._total} failed: {where}: {error} | {run}")


# ------------------------------------------------------------------------------------------------ output

class Out:
    """Where a command's result goes (``--output PATH|-``) and how its tables are drawn (module docstring)."""

    def __init__(self, path: str | None, *, several: bool = False) -> None:
        self.path = None if path is None or path == "-" else path
        #: ``several=True``: results of several runs (``sync --dataset all``) make one output: on stdout each
        #: is written as it comes, to a file all at once by :meth:`finish`; CSV has one header line
        self._held: list[str] | None = [] if several else None
        self._csv_header: Sequence[str] | None = None

    @property
    def terminal(self) -> bool:
        """The result goes to stdout and stdout is a terminal: tables fit its width, with colour."""
        return self.path is None and sys.stdout.isatty()

    def text(self, text: str, *, newline: bool = True) -> None:
        """Write ``text`` (ending in a newline unless ``newline=False``) to stdout or, atomically, the file."""
        text = text if text.endswith("\n") or not newline else text + "\n"
        if self._held is not None and self.path is not None:
            self._held.append(text)
            return
        with dbcost._files.AtomicOutput(self.path, binary=False) as f:
            f.write(text)

    def finish(self) -> None:
        """``several=True``: write what was held to the file (nothing to do for stdout)."""
        held, self._held = self._held, None
        if held:
            self.text("".join(held), newline=False)

    def json(self, data: Any) -> None:
        import orjson

        self.text(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())

    def csv(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        text = csv_text(header, rows)
        if self._held is not None:
            if self._csv_header is not None and list(header) == list(self._csv_header):
                text = text.split("\n", 1)[1]  # the same columns as the run before: one header line
            self._csv_header = list(header)
        self.text(text, newline=bool(text))

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
        from rich.console import Console

        if self.terminal:
            render(Console(highlight=False, width=shutil.get_terminal_size().columns))
            return
        from dbcost.report.table import NATURAL_WIDTH

        buf = io.StringIO()
        render(Console(file=buf, width=NATURAL_WIDTH, color_system=None, force_terminal=False, highlight=False,
                       soft_wrap=False))
        self.text("\n".join(line.rstrip() for line in buf.getvalue().splitlines()))


def _csv_cell(value: Any) -> Any:
    """A value as JSON writes it (``true``, not Python's ``True``; None empty), a Decimal exactly."""
    import dbcost.money

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return dbcost.money.fmt(value)
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV of ``header`` and ``rows``, ``\\n`` line ends as every other CSV dbcost writes (fetch, export); a
    Decimal is written exactly as :func:`dbcost.money.fmt` does, a bool as JSON's, None as an empty field."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_csv_cell(v) for v in row])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ tables

def print_table(f: Any, query: dbcost.CostQuery, records: list[dbcost.CostRecord]) -> None:
    """``fetch --format table``: one row per record, one column per group key and metric, and a total row
    per metric whose records share one unit; fitted to the terminal when ``f`` is one, else at its natural
    width."""
    from rich.console import Console
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
    terminal = f is sys.stdout and sys.stdout.isatty()
    buf = io.StringIO()
    fit(Console(file=buf, width=shutil.get_terminal_size().columns if terminal else NATURAL_WIDTH,
                color_system=None, highlight=False), table, drop=("est.",))
    f.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")


PLAN_COLUMNS = ("target", "granularity", "start", "end", "dataset")


def print_plan(plan: dbcost.plan.Plan, fmt: str, out: Out, *, probe: Any = None, history: bool = True) -> None:
    """``--dry-run``: the units and what they will cost, as a table, JSON or CSV (one row per unit); with
    ``probe`` (a :class:`~dbcost.jobs.backfill.ProbeOutcome`) the run's expected requests are the probe's estimate
    of what it still sends, and what the probe spent is shown."""
    import dbcost.plan

    units = dbcost.plan.describe_units(plan.units)
    expected = probe.expected_requests if probe is not None else plan.expected_requests
    expected_usd = probe.expected_cost_usd if probe is not None else plan.expected_cost_usd
    if fmt == "json":
        out.json({
            "plan_id": plan.plan_id, "shard": str(plan.shard) if plan.shard else None, "units": units,
            "min_requests": plan.min_requests, "expected_requests": expected,
            "min_cost_usd": str(plan.min_cost_usd), "expected_cost_usd": str(expected_usd),
            "estimate_from": "probe" if probe is not None else ("history" if history else "none"),
            **(probe.to_json() if probe is not None else {}),
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
                      f"expected {expected} (${expected_usd}) at $0.01 per request/page", markup=False)
        if probe is not None:
            console.print(f"the probe sent {probe.requests} request(s) (allowance {probe.allowance}); its "
                          f"{probe.staged_pages} page(s) are staged and the run reuses them (not counted above)"
                          + ("" if probe.complete else "; it saw no whole day within its allowance, so the "
                             "estimate is a lower bound"), markup=False)

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
        if a.resource_level is not None:
            from dbcost.report.table import render_resource_level

            render_resource_level(a.resource_level, console)

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

#: the run's own counters a JSON log line of its summary carries as fields (beside the request counters)
_RUN_FIELDS = ("run_id", "status", "quarantined", "units", "units_done", "units_skipped", "units_failed",
               "units_stopped", "inserted", "changed", "deleted")


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
        fields={**st.to_json(), **{k: v for k, v in outcome.to_json().items() if k in _RUN_FIELDS}},
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
