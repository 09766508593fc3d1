"""Record files: JSONL (the ``dbcost fetch`` shape), CSV (one row per record and metric), and an
atomic-write helper so a file at the requested path is always complete.

JSONL is written with orjson; amounts stay decimal strings exactly as received (never floats).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from dbcost.errors import ConfigError
from dbcost.models import CostRecord
from dbcost.money import fmt

__all__ = [
    "CSV_BASE_COLUMNS",
    "AtomicOutput",
    "csv_rows",
    "jsonl_line",
]

#: CSV columns before the group-key columns; after them come ``metric, amount, unit``.
CSV_BASE_COLUMNS = ("period_start", "period_end", "granularity", "estimated")


def jsonl_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"



def csv_rows(records: Iterable[CostRecord], key_columns: Sequence[str]) -> Iterator[list[str]]:
    """Long CSV rows: one per (record, metric), keys in ``key_columns`` order ('' when absent)."""
    for rec in records:
        base = [rec.period_start, rec.period_end, rec.granularity, "true" if rec.estimated else "false"]
        keys = [rec.keys.get(k, "") for k in key_columns]
        for name, m in rec.metrics.items():
            yield [*base, *keys, name, fmt(m.amount), m.unit]



class AtomicOutput:
    """A file written under a temporary name and renamed to ``path`` only when complete.

    On failure the temporary file is kept as ``<path>.partial`` (the records in it were paid for) and
    :attr:`partial_path` says where; ``path`` itself is never left half-written. ``None`` or ``"-"``
    means stdout, written directly. The temporary file lives beside the target so the final rename is
    atomic on the same filesystem.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, binary: bool = True) -> None:
        self.path = None if path is None or str(path) == "-" else Path(path)
        # /dev/null, a FIFO, /dev/stdout: written in place; renaming a temp file over them would replace
        # the device node with a regular file
        self.special = self.path is not None and self.path.exists() and not self.path.is_file()
        self.binary = binary
        self.partial_path: Path | None = None
        self._tmp: Path | None = None
        self._file: IO[Any] | None = None
        if self.path is not None:
            parent = self.path.parent
            if not parent.is_dir():
                raise ConfigError(f"output {self.path}: directory {parent} does not exist")

    def __enter__(self) -> IO[Any]:
        if self.path is None:
            self._file = sys.stdout.buffer if self.binary else sys.stdout
            return self._file
        if self.special:
            raw = self.path.open("wb")
            self._file = raw if self.binary else io.TextIOWrapper(raw, encoding="utf-8", newline="")
            return self._file
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        raw = os.fdopen(fd, "wb")
        self._file = raw if self.binary else io.TextIOWrapper(raw, encoding="utf-8", newline="")
        return self._file

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        f = self._file
        assert f is not None
        if self.special:
            f.close()
            return
        if self.path is None or self._tmp is None:
            f.flush()
            return
        f.flush()
        if exc_type is None:
            os.fsync(f.fileno())
            f.close()
            os.replace(self._tmp, self.path)
            return
        f.close()
        if self._tmp.stat().st_size > 0:
            self.partial_path = self.path.with_name(self.path.name + ".partial")
            os.replace(self._tmp, self.partial_path)
        else:
            self._tmp.unlink(missing_ok=True)
