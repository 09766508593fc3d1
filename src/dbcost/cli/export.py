"""``dbcost export``: the stored records as JSONL, CSV or Parquet (reads the store, sends nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import dbcost
import dbcost.jobs.export
from dbcost.cli.app import DbcostError, UsageError, fail, fail_usage, say
from dbcost.cli.options import DbOpt

__all__ = ["export"]


def export(
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout (jsonl/csv).")] = "-",
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset (fingerprint).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Only this target.")] = None,
) -> None:
    """Write the stored records in the `dbcost fetch` JSONL shape (plus dataset, target, version and the
    run_id that wrote it), or as CSV/Parquet with the fetch CSV columns (plus dataset, target)."""
    if format_ not in ("jsonl", "csv", "parquet"):
        fail_usage(f"--format: must be jsonl, csv or parquet, got {format_!r}")
    if format_ == "parquet" and output == "-":
        fail_usage("--output: parquet needs a file path")
    try:
        n = dbcost.jobs.export.run_export(Path(db), fmt=format_, output=output, dataset=dataset, target=target)
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    say(f"dbcost export: {n} record(s) written")
