"""What the commands draw: progress on stderr, tables on stdout, run summaries.

Progress is rich only where :func:`~dbcost.cli.app.live_progress` allows it (a terminal without JSON log
lines); elsewhere it is nothing (a fetch) or one plain line per finished unit (a run), so logs and CI output
stay readable. Tables are rich tables; ``--json`` output is indented JSON (orjson).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

import dbcost
import dbcost._files
import dbcost.plan
from dbcost.cli.app import EXIT_FAILED, EXIT_OK, EXIT_QUARANTINED, err_console, say

__all__ = [
    "RunProgress",
    "page_status",
    "print_attribution",
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


# ------------------------------------------------------------------------------------------------ tables

def print_table(f: Any, query: dbcost.CostQuery, records: list[dbcost.CostRecord]) -> None:
    """``fetch --format table``: one row per record, one column per group key and metric."""
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("period", *query.columns):
        table.add_column(col)
    for m in query.metrics:
        table.add_column(m, justify="right")
    table.add_column("est.")
    for r in records:
        table.add_row(
            r.period_start,
            *(r.keys.get(c, "") for c in query.columns),
            *(f"{r.metrics[m].amount} {r.metrics[m].unit}" if m in r.metrics else "" for m in query.metrics),
            "yes" if r.estimated else "",
        )
    buf = io.StringIO()
    Console(file=buf, width=200).print(table)
    f.write(buf.getvalue())


def print_plan(plan: dbcost.plan.Plan, as_json: bool, *, probe: Any = None, history: bool = True) -> None:
    """``--dry-run``: the units and what they will cost, as a table or JSON; with ``probe`` (a
    :class:`~dbcost.jobs.backfill.ProbeOutcome`) the run's expected requests are the probe's estimate of what it
    still sends, and what the probe spent is shown."""
    units = dbcost.plan.describe_units(plan.units)
    expected = probe.expected_requests if probe is not None else plan.expected_requests
    expected_usd = probe.expected_cost_usd if probe is not None else plan.expected_cost_usd
    if as_json:
        import orjson

        typer.echo(orjson.dumps({
            "plan_id": plan.plan_id, "shard": str(plan.shard) if plan.shard else None, "units": units,
            "min_requests": plan.min_requests, "expected_requests": expected,
            "min_cost_usd": str(plan.min_cost_usd), "expected_cost_usd": str(expected_usd),
            "estimate_from": "probe" if probe is not None else ("history" if history else "none"),
            **(probe.to_json() if probe is not None else {}),
        }, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.table import Table

    table = Table(title=f"plan {plan.plan_id}" + (f" shard {plan.shard}" if plan.shard else ""))
    for col in ("target", "granularity", "start", "end", "dataset"):
        table.add_column(col)
    for u in units:
        table.add_row(u["target"], u["granularity"], u["start"], u["end"], u["dataset"])
    Console().print(table)
    typer.echo(f"{len(units)} unit(s); at least {plan.min_requests} request(s) (${plan.min_cost_usd}), "
               f"expected {expected} (${expected_usd}) at $0.01 per request/page")
    if probe is not None:
        typer.echo(f"the probe sent {probe.requests} request(s) (allowance {probe.allowance}); its "
                   f"{probe.staged_pages} page(s) are staged and the run reuses them (not counted above)"
                   + ("" if probe.complete else "; it saw no whole day within its allowance, so the estimate is "
                      "a lower bound"))


def print_attribution(a: Any) -> None:
    """``attribute --format table``: spend per team, the top clusters by category, unclassified usage."""
    from rich.table import Table

    console = Console()
    cats = ("compute", "storage", "io", "backup", "data_transfer", "other", "shared")
    teams = Table(title=f"Database spend {a.month} ({a.metric}), total {a.total:,.2f} USD")
    teams.add_column("team")
    teams.add_column("amount", justify="right")
    teams.add_column("share", justify="right")
    teams.add_column("clusters", justify="right")
    for t in a.teams:
        share = (t.amount / a.total * 100) if a.total else 0
        teams.add_row(t.team, f"{t.amount:,.2f}", f"{share:.1f}%", str(len(t.clusters)))
    teams.add_row("unattributed", f"{a.unattributed:,.2f}",
                  f"{(a.unattributed / a.total * 100) if a.total else 0:.1f}%", str(len(a.unattributed_clusters)),
                  style="yellow")
    console.print(teams)
    clusters = Table(title="Top clusters by category")
    for col in ("team", "cluster", "amount", *cats):
        clusters.add_column(col, justify="right" if col not in ("team", "cluster") else "left")
    rows = sorted(((t.team, c) for t in a.teams for c in t.clusters), key=lambda x: -x[1].amount)[:25]
    for team, c in rows:
        clusters.add_row(team, c.cluster, f"{c.amount:,.2f}", *(f"{c.categories.get(k, 0):,.2f}" for k in cats))
    console.print(clusters)
    if a.unclassified_usage_types:
        un = Table(title="Unclassified usage types (category 'other')")
        un.add_column("service")
        un.add_column("usage type")
        un.add_column("amount", justify="right")
        for u in a.unclassified_usage_types[:20]:
            un.add_row(u.service, u.usage_type, f"{u.amount:,.2f}")
        console.print(un)
    if a.estimated_amount:
        console.print(f"estimated (month still open): {a.estimated_amount:,.2f} USD of {a.total:,.2f}")
    if a.resource_level is not None:
        from dbcost.report.table import render_resource_level

        render_resource_level(a.resource_level, console)


# --------------------------------------------------------------------------------------------- summaries

#: the run's own counters a JSON log line of its summary carries as fields (beside the request counters)
_RUN_FIELDS = ("run_id", "status", "quarantined", "units", "units_done", "units_skipped", "units_failed",
               "units_stopped", "inserted", "changed", "deleted")


def report_run(outcome: dbcost.RunOutcome, *, as_json: bool, strict: bool, command: str) -> int:
    """A backfill/sync run's summary (JSON on stdout with ``--json``, a line on stderr) -> its exit code."""
    if as_json:
        import orjson

        typer.echo(orjson.dumps(outcome.to_json(), option=orjson.OPT_INDENT_2).decode())
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
