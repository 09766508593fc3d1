"""``dbcost datasets``: what the store holds, one line (or one JSON object) per dataset (reads the store only)."""

from __future__ import annotations

from pathlib import Path

from dbcost.cli.app import DbcostError, UsageError, fail, fail_usage
from dbcost.cli.options import DbOpt, FormatOpt, OutputOpt, check_output
from dbcost.cli.views import Out

__all__ = ["datasets"]


def datasets(db: DbOpt = "dbcost.duckdb", format_: FormatOpt = "table", output: OutputOpt = "-") -> None:
    """List the store's datasets and what each holds.

    One line (or JSON object) per dataset: id, label, operation, the Cost Explorer query (without its
    TimePeriod), the periods held (start, exclusive end), record rows and when they were last fetched.
    Datasets overlap (a backfill's and attribution's own hold the same spend): export one at a time with
    `dbcost export --dataset ID|LABEL`, or `--dataset all` to have every row name its dataset;
    `dbcost sync --dataset ID|LABEL|all` brings them up to date with their stored query.
    """
    from rich.table import Table
    from rich.text import Text

    import dbcost.jobs.datasets
    from dbcost.report.table import print_table

    try:
        check_output(output)
        infos = dbcost.jobs.datasets.list_datasets(Path(db))
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    out = Out(output)
    if format_ == "json":
        out.json([i.to_json() for i in infos])
        return
    if format_ == "csv":
        out.rows([i.to_json() for i in infos])
        return
    table = Table(title=f"Datasets in {db}", title_justify="left")
    for name in ("Dataset", "Label", "Query", "Start", "End"):
        table.add_column(name, overflow="fold")
    table.add_column("Records", justify="right")
    table.add_column("Fetched (UTC)")
    for i in infos:
        s = i.summary
        table.add_row(s.dataset, Text(s.label or "-"), Text(dbcost.jobs.datasets.describe_query(i)), s.start or "-",
                      s.end or "-", f"{s.records:,}", s.fetched_at.strftime("%Y-%m-%d %H:%M") if s.fetched_at else "-")
    out.draw(lambda console: print_table(console, table, drop=("Fetched (UTC)", "Query")))
