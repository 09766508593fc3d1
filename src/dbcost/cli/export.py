"""``dbcost export``: the stored records of one dataset (or all, each row naming its own) as JSONL, CSV,
Parquet or FOCUS (reads the store, sends nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dbcost.cli.app import DbcostError, UsageError, fail, fail_usage, say
from dbcost.cli.options import ClusterTagOpt, DbOpt, TeamTagOpt

__all__ = ["export"]


def export(
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[
        Literal["jsonl", "csv", "parquet", "focus"],
        typer.Option("--format", case_sensitive=False,
                     help="focus: the FinOps FOCUS columns, as CSV or Parquet by the --output suffix."),
    ] = "jsonl",
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout (jsonl/csv).")] = "-",
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="ID|LABEL|all: the dataset to export (`dbcost datasets` lists them); required when the "
                          "store holds several. `all` adds each row's dataset label and query.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Only this target.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Only periods starting on or after this day, "
                                                              "YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Only periods starting before this day, YYYY-MM-DD "
                                                          "(exclusive).")] = None,
    month: Annotated[str | None, typer.Option("--month", help="Only periods starting in this month, YYYY-MM.")] = None,
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    quarantine: Annotated[bool, typer.Option(
        "--quarantine", help="Write the quarantined groups instead of the records (JSONL: reason, period, page, "
                             "raw JSON, dataset, target, run_id).")] = False,
) -> None:
    """Write one dataset's stored records as JSONL, CSV, Parquet or FOCUS.

    JSONL is the `dbcost fetch` shape (plus dataset, target, version and the run_id that wrote it); CSV and
    Parquet the fetch CSV columns (plus dataset, target; Parquet typed: DATE periods, DECIMAL(38,10)
    amounts, SQL-safe key column names); FOCUS the FinOps Foundation's columns. A store holding several
    datasets needs --dataset (they overlap: summing them counts spend twice). --quarantine writes the groups
    that failed validation instead, with their reason and raw JSON.
    """
    import dbcost.jobs.export

    if format_ not in dbcost.jobs.export.FORMATS:
        fail_usage(f"--format: must be jsonl, csv, parquet or focus, got {format_!r}")
    if format_ == "parquet" and output == "-":
        fail_usage("--output: parquet needs a file path")
    try:
        first, last = dbcost.jobs.export.period_range(start, end, month)
        spec = dbcost.jobs.export.ExportSpec(
            db=Path(db), fmt=format_, output=output, dataset=dataset,  # type: ignore[arg-type,unused-ignore]
            target=target, start=first, end=last, cluster_tag=cluster_tag, team_tag=team_tag, quarantine=quarantine)
        n = dbcost.jobs.export.run_export(spec)
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    say(f"dbcost export: {n} quarantined group(s) written" if quarantine else f"dbcost export: {n} record(s) written")
