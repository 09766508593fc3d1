"""``dbcost export``: the store's records as JSONL, CSV, Parquet or FOCUS, one question at a time.

**Which records.** A store holds several datasets that overlap (a backfill's, and the per-service datasets
``attribute`` fetches for itself): summing across them counts the same spend several times. So an export
reads the datasets ``--dataset`` names (an id, a label, or ``all``; see
:func:`dbcost.jobs.datasets.select_datasets`), and a store holding several refuses to guess. ``--dataset
all`` adds each row's ``dataset_label`` and ``dataset_query`` (what the dataset is, in one line) so the
rows still say which question they answer. ``--target`` keeps one target, ``--start``/``--end`` (or
``--month``) the periods *starting* in ``[start, end)``.

**Formats.**

* ``jsonl``: the ``dbcost fetch`` record shape plus ``dataset``, ``target``, ``version``, ``run_id``;
* ``csv``: the fetch CSV columns (one row per record and metric, key columns named as the keys are, e.g.
  ``TAG:db-cluster``) plus ``dataset`` and ``target``; amounts exactly as received;
* ``parquet``: the same rows with types: ``period_start``/``period_end`` as DATE (TIMESTAMP WITH TIME ZONE
  for an HOURLY dataset), ``amount`` as DECIMAL(38,10), ``estimated`` BOOLEAN, and key columns under SQL-safe
  names (:func:`safe_key_columns`: ``TAG:db-cluster`` -> ``tag_db_cluster``, ``SERVICE`` -> ``service``)
  whose original key names are in the file's metadata (``dbcost.key_columns``, a JSON object of column ->
  key name);
* ``focus``: one FOCUS row per record (:mod:`dbcost.focus`), CSV or Parquet by the output's suffix; one
  dataset only (FOCUS rows are summed by every tool that reads them).

``--quarantine`` exports the groups that failed validation instead (JSONL: the ``fetch --quarantine`` shape,
``reason``, ``period_start``, ``period_end``, ``page``, ``raw``, plus ``dataset``, ``target``, ``run_id``).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from dbcost._files import AtomicOutput, atomic_path
from dbcost.attribution.pools import resolve_teams
from dbcost.calendar import add_months
from dbcost.errors import UsageError
from dbcost.focus import COLUMNS, FocusSource, focus_row
from dbcost.jobs.datasets import ALL, DatasetInfo, describe_query, list_datasets, select_datasets
from dbcost.money import fmt
from dbcost.sinks.files import jsonl_line
from dbcost.store import ExportSelection, Store

__all__ = ["FORMATS", "ExportSpec", "period_range", "run_export", "safe_key_columns"]

Format = Literal["jsonl", "csv", "parquet", "focus"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet", "focus")
#: the long export's own columns: a key column may not take one of these names
_BASE_COLUMNS = frozenset({"dataset", "target", "period_start", "period_end", "granularity", "estimated", "metric",
                           "amount", "unit", "dataset_label", "dataset_query"})
_MONTH_RE = re.compile(r"\d{4}-\d{2}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ExportSpec:
    """One export: the store, the format and output (a path, or ``-`` for stdout with jsonl/csv), which
    datasets (``--dataset``; None = the store's only one), target and periods (ISO dates, ``end`` exclusive),
    and the tags naming clusters and teams (FOCUS ``x_Cluster``/``x_Team``)."""

    db: Path
    fmt: Format
    output: str
    dataset: str | None = None
    target: str | None = None
    start: str | None = None
    end: str | None = None
    cluster_tag: str = "db-cluster"
    team_tag: str = "team"
    #: export the datasets' quarantined groups instead of their records (JSONL only)
    quarantine: bool = False


def period_range(start: str | None, end: str | None, month: str | None) -> tuple[str | None, str | None]:
    """``--start``/``--end``/``--month`` as one ``[start, end)`` of ISO dates (either open); UsageError for a
    bad date, a month given with a start or end, or an end not after the start."""
    if month is not None:
        if start is not None or end is not None:
            raise UsageError("--month: give either --month or --start/--end, not both")
        if not _MONTH_RE.fullmatch(month):
            raise UsageError(f"--month: must be YYYY-MM, got {month!r}")
        try:
            first = dt.date.fromisoformat(f"{month}-01")
        except ValueError:
            raise UsageError(f"--month: must be YYYY-MM, got {month!r}") from None
        return first.isoformat(), add_months(first, 1).isoformat()
    for name, value in (("--start", start), ("--end", end)):
        if value is None:
            continue
        try:
            if not _DATE_RE.fullmatch(value):
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"{name}: must be a date YYYY-MM-DD, got {value!r}") from None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--end: must be after --start {start} (end is exclusive), got {end}")
    return start, end


def safe_key_columns(key_names: list[str]) -> dict[str, str]:
    """Key name -> a column name SQL needs no quotes for: lower case, ``TAG:``/``COST_CATEGORY:`` as
    ``tag_``/``cost_category_``, every other run of non-alphanumerics one ``_`` (``TAG:db-cluster`` ->
    ``tag_db_cluster``). A name taken by the export's own columns or an earlier key gets ``_2``, ``_3``, ..."""
    out: dict[str, str] = {}
    taken = set(_BASE_COLUMNS)
    for name in key_names:
        base = re.sub(r"[^a-z0-9]+", "_", name.lower().replace(":", "_")).strip("_") or "key"
        if base[0].isdigit():
            base = "k_" + base
        col, n = base, 1
        while col in taken:
            n += 1
            col = f"{base}_{n}"
        taken.add(col)
        out[name] = col
    return out


def run_export(spec: ExportSpec) -> int:
    """Write the export ``spec`` describes; the number of records (JSONL, FOCUS) or rows (CSV, Parquet)
    written. Every refusal (an unknown or ambiguous dataset, FOCUS of several datasets, a bad suffix) is a
    UsageError raised before anything is written."""
    every = list_datasets(spec.db)
    infos = select_datasets(every, spec.dataset)
    if spec.quarantine:
        return _run_quarantine(spec, infos)
    if spec.fmt == "focus":
        return _run_focus(spec, infos, every)
    described = spec.dataset == ALL
    extra = {i.dataset: {"dataset_label": i.label, "dataset_query": describe_query(i)} for i in infos} \
        if described else {}
    with Store(spec.db, read_only=True) as store:
        if spec.fmt == "jsonl":
            n = 0
            with AtomicOutput(spec.output) as f:
                for info in infos:
                    for batch in store.iter_records(dataset=info.dataset, target=spec.target, start=spec.start,
                                                    end=spec.end):
                        if described:
                            for r in batch:
                                r.update(extra[info.dataset])
                        f.write(b"".join(jsonl_line(r) for r in batch))
                        n += len(batch)
            return n
        datasets = tuple(i.dataset for i in infos)
        if spec.fmt == "parquet":
            names = sorted({n for i in infos for n in i.summary.key_names})
            columns = safe_key_columns(names)
            selection = ExportSelection(datasets, spec.target, spec.start, spec.end, key_columns=columns,
                                        extra=extra, typed=True)
            target_path = AtomicOutput(spec.output).path  # checks the directory; Parquet needs a file
            assert target_path is not None
            metadata = {"dbcost.key_columns": orjson.dumps({c: k for k, c in columns.items()}).decode(),
                        "dbcost.datasets": orjson.dumps([i.to_json() for i in infos]).decode()}
            with atomic_path(target_path) as tmp:
                return store.export_parquet(tmp, selection, metadata=metadata)
        selection = ExportSelection(datasets, spec.target, spec.start, spec.end, extra=extra)
        n = 0
        with AtomicOutput(spec.output, binary=False) as f, store.export_rows(selection) as result:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(result.columns)
            for rows in result:
                w.writerows(["true" if v is True else "false" if v is False else "" if v is None else v for v in r]
                            for r in rows)
                n += len(rows)
        return n


def _run_quarantine(spec: ExportSpec, infos: list[DatasetInfo]) -> int:
    """``--quarantine``: the groups that failed validation, kept with their reason and raw JSON, as JSONL (the
    ``fetch --quarantine`` shape plus dataset, target, run_id); their spend is in no record."""
    if spec.fmt != "jsonl":
        raise UsageError(f"--quarantine: writes JSONL (reason, period, page, raw JSON); --format {spec.fmt} "
                         "is for records")
    with Store(spec.db, read_only=True) as store:
        groups = store.quarantined_groups([i.dataset for i in infos], target=spec.target, start=spec.start,
                                          end=spec.end)
    with AtomicOutput(spec.output) as f:
        f.write(b"".join(jsonl_line(g) for g in groups))
    return len(groups)


# ------------------------------------------------------------------------------------------------- FOCUS


def _focus_kind(output: str) -> Literal["csv", "parquet"]:
    suffix = Path(output).suffix.lower()
    if output == "-" or suffix not in (".csv", ".parquet"):
        raise UsageError(f"--output {output}: --format focus writes CSV or Parquet, chosen by the suffix "
                         "(.csv or .parquet)")
    return "csv" if suffix == ".csv" else "parquet"


def _run_focus(spec: ExportSpec, infos: list[DatasetInfo], every: list[DatasetInfo]) -> int:
    kind = _focus_kind(spec.output)
    if len(infos) != 1:
        raise UsageError("--dataset: --format focus exports one dataset (FOCUS rows are summed by whatever reads "
                         "them; several overlapping datasets would count spend twice); name its id or label")
    [info] = infos
    if info.query is None:
        raise UsageError(f"--dataset {info.dataset}: its stored query no longer validates; cannot map it to FOCUS")
    source = FocusSource.of(info.dataset, info.query, cluster_tag=spec.cluster_tag, team_tag=spec.team_tag)
    target_path = AtomicOutput(spec.output).path
    assert target_path is not None
    with Store(spec.db, read_only=True) as store:
        teams = _TeamLookup(store, every, source)
        rows = _focus_rows(store, source, spec, teams)
        if kind == "csv":
            return _write_focus_csv(target_path, rows)
        return _write_focus_parquet(target_path, rows, info)


def _focus_rows(store: Store, source: FocusSource, spec: ExportSpec,
                teams: _TeamLookup) -> Iterator[list[dict[str, Any]]]:
    for batch in store.iter_records(dataset=source.dataset, target=spec.target, start=spec.start, end=spec.end):
        yield [focus_row(source, r, str(r["target"]), teams.team_of(str(r["target"]))) for r in batch]


class _TeamLookup:
    """A cluster's team in a month, for FOCUS ``x_Team`` when the exported dataset has no team tag key: read
    from a dataset of the store grouped by the cluster tag and the team tag (``attribute`` fetches one), the
    team with most of the cluster's spend in that month (as attribution decides it)."""

    def __init__(self, store: Store, infos: list[DatasetInfo], source: FocusSource) -> None:
        self._store = store
        wanted = (f"TAG:{source.cluster_tag}", f"TAG:{source.team_tag}")
        self._teams_ds = next((i for i in infos if i.summary.key_names == wanted
                               and source.billed_metric in i.summary.metrics), None)
        self._metric = source.billed_metric
        self._cache: dict[tuple[str, dt.date], Mapping[str, tuple[str | None, str]]] = {}
        self.needed = wanted[1] not in source.key_names and wanted[0] in source.key_names

    def team_of(self, target: str) -> Callable[[str, dt.date], str | None] | None:
        if not self.needed or self._teams_ds is None:
            return None
        ds = self._teams_ds.dataset

        def lookup(cluster: str, month: dt.date) -> str | None:
            key = (target, month)
            if key not in self._cache:
                rows = self._store.metric_amounts(ds, self._metric, month.isoformat(),
                                                  add_months(month, 1).isoformat(), [target])
                self._cache[key] = resolve_teams([(r.key1 or "", r.key2 or "", r.amount) for r in rows], None)
            return self._cache[key].get(cluster, (None, "none"))[0]

        return lookup


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _write_focus_csv(path: Path, rows: Iterator[list[dict[str, Any]]]) -> int:
    n = 0
    names = [c.name for c in COLUMNS]
    out: IO[str]
    with AtomicOutput(path, binary=False) as out:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        for batch in rows:
            w.writerows([_csv_cell(r[name]) for name in names] for r in batch)
            n += len(batch)
    return n


def _write_focus_parquet(path: Path, rows: Iterator[list[dict[str, Any]]], info: DatasetInfo) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"decimal": pa.decimal128(38, 10), "datetime": pa.timestamp("us", tz="UTC"), "string": pa.string(),
             "json": pa.string(), "bool": pa.bool_()}
    schema = pa.schema([pa.field(c.name, types[c.kind]) for c in COLUMNS],
                       metadata={"dbcost.focus_columns": "FOCUS 1.0 + ServiceSubcategory (1.1)",
                                 "dbcost.dataset": orjson.dumps(info.to_json()).decode()})
    quantum = Decimal("1E-10")
    n = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for batch in rows:
            cols: dict[str, list[Any]] = {c.name: [] for c in COLUMNS}
            for r in batch:
                for c in COLUMNS:
                    v = r[c.name]
                    if c.kind == "decimal" and v is not None and v.as_tuple().exponent < -10:
                        v = v.quantize(quantum)  # the store keeps ten places (DECIMAL(38,10)) too
                    cols[c.name].append(v)
            writer.write_table(pa.table(cols, schema=schema))
            n += len(batch)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n
