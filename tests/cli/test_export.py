"""`dbcost export` through the CLI on a store an earlier release wrote: JSONL, CSV and Parquet hold the same
records and the same exact money as the store, each file complete or absent."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from dbcost.store import Store
from tests.conftest import run_cli_async

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "store-v1.duckdb"


async def test_every_export_format_holds_the_stores_exact_total(tmp_path: Path) -> None:
    """JSONL, CSV and Parquet exports (`--dataset all`) of an upgraded v1 store sum to the store's own total, to
    the last digit, and so do its datasets exported one by one."""
    db = tmp_path / "s.duckdb"
    shutil.copy(FIXTURE, db)
    with Store(db) as store:  # upgraded in place
        total, rows = store.record_totals()
    outputs = {fmt: tmp_path / f"out.{fmt}" for fmt in ("jsonl", "csv", "parquet")}
    for fmt, path in outputs.items():
        code, _, err = await run_cli_async("export", "--db", str(db), "--dataset", "all", "--format", fmt,
                                           "--output", str(path))
        assert code == 0, err
    jsonl = [json.loads(line) for line in outputs["jsonl"].read_text().splitlines()]
    assert sum(Decimal(m["amount"]) for r in jsonl for m in r["metrics"].values()) == total
    with outputs["csv"].open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == rows and sum(Decimal(r["amount"]) for r in csv_rows) == total
    table = pq.read_table(outputs["parquet"])
    assert table.num_rows == rows and sum(table.column("amount").to_pylist(), Decimal(0)) == total
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.duckdb", *(p.name for p in outputs.values())])
    per_dataset = Decimal(0)
    for dataset in sorted({r["dataset"] for r in csv_rows}):
        out = tmp_path / f"{dataset}.csv"
        code, _, err = await run_cli_async("export", "--db", str(db), "--dataset", dataset, "--format", "csv",
                                           "--output", str(out))
        assert code == 0, err
        with out.open(newline="") as f:
            per_dataset += sum(Decimal(r["amount"]) for r in csv.DictReader(f))
    assert per_dataset == total


async def test_export_to_a_missing_directory_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """An --output in a directory that does not exist exits 2 with one line; nothing is written."""
    db = tmp_path / "s.duckdb"
    shutil.copy(FIXTURE, db)
    code, out, err = await run_cli_async("export", "--db", str(db), "--dataset", "all", "--format", "parquet",
                                         "--output", str(tmp_path / "nope" / "x.parquet"))
    assert code == 2 and not out
    [line] = err.strip().splitlines()
    assert "does not exist" in line
    assert not (tmp_path / "nope").exists()


async def test_bad_export_options_are_one_line_each_and_write_nothing(tmp_path: Path) -> None:
    """A month with a start, a bad date, FOCUS of several datasets or to a .json file: exit 2, one line, no file."""
    db = tmp_path / "s.duckdb"
    shutil.copy(FIXTURE, db)
    cases = [
        (["--dataset", "all", "--month", "2026-10", "--start", "2026-10-01"], "either --month or --start"),
        (["--dataset", "all", "--start", "2026-10-32"], "--start: must be a date"),
        (["--dataset", "all", "--start", "2026-10-05", "--end", "2026-10-01"], "--end: must be after"),
        (["--dataset", "all", "--format", "focus", "--output", str(tmp_path / "f.csv")], "exports one dataset"),
        (["--dataset", "e66b2eb6c75db18f", "--format", "focus", "--output", str(tmp_path / "f.json")], "suffix"),
        (["--dataset", "e66b2e", "--format", "xml"], "'xml' is not one of 'jsonl', 'csv', 'parquet', 'focus'"),
    ]
    for args, fragment in cases:
        code, out, err = await run_cli_async("export", "--db", str(db), *args)
        assert code == 2 and not out, (args, err)
        [line] = err.strip().splitlines()
        assert fragment in line, (args, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.duckdb"]
