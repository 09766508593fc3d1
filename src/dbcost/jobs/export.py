"""``dbcost export``: the store's records as JSONL, CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

from dbcost._files import AtomicOutput, atomic_path
from dbcost.errors import UsageError
from dbcost.sinks.files import jsonl_line
from dbcost.store import Store

__all__ = ["run_export"]


def run_export(db: Path, *, fmt: str, output: str, dataset: str | None = None, target: str | None = None) -> int:
    """Write the store's records as JSONL (fetch shape + dataset/target/version/run_id), CSV or Parquet (long,
    the fetch CSV columns + dataset/target). Returns the number of records (JSONL) or rows (CSV/Parquet)."""
    with Store(db, read_only=True) as store:
        if fmt == "jsonl":
            n = 0
            with AtomicOutput(output) as f:
                for batch in store.iter_records(dataset=dataset, target=target):
                    f.write(b"".join(jsonl_line(r) for r in batch))
                    n += len(batch)
            return n
        if not any(dataset is None or d["dataset"] == dataset for d in store.datasets()):
            raise UsageError(f"--dataset {dataset}: not in the store" if dataset else "the store holds no datasets")
        if fmt == "parquet":
            target_path = AtomicOutput(output).path  # checks the directory; Parquet needs a file, not stdout
            assert target_path is not None
            with atomic_path(target_path) as tmp:
                return store.export_parquet(tmp, dataset=dataset, target=target)
        n = 0
        with AtomicOutput(output, binary=False) as f, store.export_rows(dataset=dataset, target=target) as result:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(result.columns)
            for rows in result:
                w.writerows(["true" if v is True else "false" if v is False else "" if v is None else v for v in r]
                            for r in rows)
                n += len(rows)
        return n
