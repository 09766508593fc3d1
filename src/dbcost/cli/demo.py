"""``dbcost demo``: the whole job against the built-in emulator, each step checked against its ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

import dbcost
import dbcost.calendar
from dbcost.cli.app import EXIT_FAILED, EXIT_OK, fail_usage, run_async, say
from dbcost.cli.options import TodayOpt

__all__ = ["demo"]


def demo(
    dir_: Annotated[
        str, typer.Option("--dir", help="Where the demo writes its DuckDB store and report.")
    ] = "dbcost-demo",
    months: Annotated[int, typer.Option("--months", min=1, max=13, help="Months of daily data to backfill.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="The synthetic fleet's seed.")] = 7,
    today: TodayOpt = None,
) -> None:
    """Run the whole job locally against the built-in Cost Explorer emulator (no AWS account, no cost).

    Backfill into DuckDB, attribution per team/cluster/category for the last months, the month's right-sizing
    advisories, a quota check with an example policy and the HTML report, each checked against the emulator's
    ground truth. About 10 s.
    """
    def step(message: str) -> None:
        say(f"dbcost demo: {message}")

    try:
        day = dt.date.fromisoformat(today) if today else None
    except ValueError:
        fail_usage(f"--today: must be YYYY-MM-DD, got {today!r}")
    result = run_async(lambda: dbcost.run_demo(Path(dir_), months=months, today=day, seed=seed, say=step))
    o = result.outcome
    st = result.requests
    a = result.attribution
    q = result.quota
    assert a is not None and q is not None
    lines = [
        "",
        f"dbcost demo finished in {result.directory}/",
        "",
        f"  backfill      {result.start}..{result.end} ({result.months} months, DAILY): {o.units_done} units, "
        f"{o.stats.pages} pages, {o.stats.records} records,",
        f"                {o.quarantined} quarantined (== {result.malformed} malformed groups served to this query)",
        f"                stored {result.stored_total:,.10f} USD == emulator ground truth {result.truth_total:,.10f}: "
        + ("exact" if result.truth_total == result.stored_total else "MISMATCH"),
        f"  requests      {st.requests} sent, {st.billed_requests} billed (${st.cost_usd} at real prices), "
        f"{st.retries} retried, {st.throttled} throttled",
        f"  attribution   {result.month}: {a.total:,.2f} USD of database spend over {len(a.teams)} teams, "
        f"{a.unattributed:,.2f} unattributed"
        + (" (exact against the ground truth)" if result.attribution_exact else " (MISMATCH against the ground truth)"),
    ]
    lines.extend(f"                {t.amount:>14,.2f}  {t.team}" for t in a.teams[:5])
    adv = result.advice
    if adv is not None:
        kinds: dict[str, int] = {}
        for x in adv.advisories:
            kinds[x.kind] = kinds.get(x.kind, 0) + 1
        lines.append(f"  advice        {result.month}: {len(adv.advisories)} advisories, estimated savings "
                     f"{adv.total_savings:,.2f} USD/month"
                     + (" (exact against the ground truth)" if result.advice_exact
                        else " (MISMATCH against the ground truth)"))
        lines.extend(f"                {x.savings:>14,.2f}  {x.kind:<22} {x.cluster or '(untagged)':<10} "
                     f"{x.team or '-'}" for x in adv.advisories[:8])
        lines.append("                by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    else:
        lines.append("  advice        not computed (the fetch did not finish)")
    statuses = ", ".join(f"{p.pool} {p.status}" for p in q.pools if p.status != "OK") or "all OK"
    # the reported month to date: on the 1st that is the whole previous month (a window is never empty)
    fetch_start, month_end = dbcost.calendar.month_bounds(result.month)
    fetch_end = min(month_end, result.end or dt.datetime.now(dt.UTC).date())
    lines += [
        f"  quota         {result.policy_path}: {statuses}",
        f"  report        {result.report_path}",
        # a different count from the backfill's: other queries (per service, by usage type) and one month
        f"                {result.report_quarantined} quarantined in {result.month}'s attribution datasets (== "
        f"{result.report_malformed} malformed groups served to those queries; the backfill's "
        f"{o.quarantined} are its own query's, over {result.months} months)",
        "",
        "next:",
        f"  dbcost report --db {result.db} --month {result.month}              # the same report as tables",
        f"  dbcost quota check --db {result.db} --policy {result.policy_path} --month {result.month} --fail-on breach",
        f"  dbcost export --db {result.db} --format csv -o costs.csv     # every stored record",
        "  dbcost emulator serve &                                       # a local Cost Explorer; it prints its URL",
        "  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x dbcost fetch --endpoint-url URL \\",
        f"      --start {fetch_start} --end {fetch_end} --group-by SERVICE --format table",
        "",
    ]
    typer.echo("\n".join(lines))
    raise typer.Exit(EXIT_OK if result.exact and o.ok else EXIT_FAILED)
