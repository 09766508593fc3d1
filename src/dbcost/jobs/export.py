"""``dbcost export``: the store's records as JSONL, CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

from dbcost._files import AtomicOutput
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
        names = sorted({n for d in store.datasets() for n in d["key_names"]
                        if dataset is None or d["dataset"] == dataset})
        selects = []
        for d in store.datasets():
            if dataset is not None and d["dataset"] != dataset:
                continue
            kn = d["key_names"] + [None, None]
            key_cols = ", ".join(
                (f"r.key1 AS \"{n}\"" if n == kn[0] else f"r.key2 AS \"{n}\"" if n == kn[1] else f"NULL::VARCHAR AS \"{n}\"")
                for n in names
            )
            where = "r.dataset = '" + d["dataset"].replace("'", "''") + "'"
            if target is not None:
                where += " AND r.target = '" + target.replace("'", "''") + "'"
            selects.append(
                "SELECT r.dataset, r.target, r.period_start, r.period_end, ds.granularity, r.estimated"
                + (", " + key_cols if key_cols else "")
                + ", r.metric, " + ("r.amount" if fmt == "parquet" else "r.amount_text AS amount")
                + f", r.unit FROM records r JOIN datasets ds USING (dataset) WHERE {where}"
            )
        if not selects:
            raise UsageError(f"--dataset {dataset}: not in the store" if dataset else "the store holds no datasets")
        sql = " UNION ALL BY NAME ".join(f"({q})" for q in selects)
        sql = f"SELECT * FROM ({sql}) ORDER BY dataset, target, period_start" + "".join(
            f', "{n}" NULLS FIRST' for n in names) + ", metric"
        if fmt == "parquet":
            out = AtomicOutput(output)
            tmp_target = out.path
            assert tmp_target is not None
            tmp = tmp_target.with_name(f".{tmp_target.name}.tmp")
            store.execute(f"COPY ({sql}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT PARQUET)")
            tmp.replace(tmp_target)
            rows = store.query(f"SELECT count(*) FROM read_parquet('{str(tmp_target).replace(chr(39), chr(39) * 2)}')")
            return int(rows[0][0])
        n = 0
        with AtomicOutput(output, binary=False) as f:
            w = csv.writer(f, lineterminator="\n")
            cur = store.con.cursor()
            cur.execute(sql)
            w.writerow([d[0] for d in cur.description or []])
            while True:
                rows2 = cur.fetchmany(10_000)
                if not rows2:
                    break
                w.writerows(["true" if v is True else "false" if v is False else "" if v is None else v for v in r]
                            for r in rows2)
                n += len(rows2)
            cur.close()
        return n
