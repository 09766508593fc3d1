"""The store's one connection to DuckDB, and the one place its errors become :class:`~dbcost.errors.StoreError`.

This is the only module that imports ``duckdb`` (lazily: importing the store costs nothing until a store is
opened). :class:`Database` wraps the connection so that every call through it (``run``, ``all``, ``one``,
``scalar``, the cursors behind ``rows`` and ``arrow_batches``, ``registered``, ``transaction``, ``close``) translates a
``duckdb.Error`` (and an ``OSError`` from the filesystem: a full disk, a read-only one) into a one-line
``StoreError`` chained with ``raise ... from``; the store's modules never hold the raw
connection, so no DuckDB call can bypass the translation. A translated error names the store and the
*operation* that failed (``store s.duckdb: commit unit: IO Error: ...``): every public store method is
declared with :func:`operation`, which names what it does while its DuckDB work runs (for a generator,
while each batch is produced, not while the caller holds it).

Settings come from :class:`~dbcost.config.StoreSettings` only (the memory cap, threads, checkpoint threshold);
the store reads no environment variable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from dbcost.config import StoreSettings
from dbcost.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Database", "Params", "Row", "Rows", "Staged", "StoreBase", "now", "open_database", "operation"]

Row = tuple[Any, ...]
#: a statement's parameters: positional (``?``) or named (``$name``, for a value used several times)
Params = Sequence[Any] | Mapping[str, Any]
P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="StoreBase")


def now() -> dt.datetime:
    """UTC now, naive (DuckDB ``TIMESTAMP`` has no zone; every timestamp the store writes is UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Database:
    """One DuckDB connection whose every call translates DuckDB's errors (see the module docstring)."""

    def __init__(self, settings: StoreSettings, *, read_only: bool) -> None:
        import duckdb

        self.path = settings.path
        self.read_only = read_only
        #: what the store is doing, for error messages; set by :func:`operation`
        self.doing = "open"
        self._depth = 0
        self._error: type[Exception] = duckdb.Error
        try:
            self._con: duckdb.DuckDBPyConnection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"--db {self.path}: cannot open: {_one_line(exc)}") from exc
        except OSError as exc:
            raise StoreError(f"--db {self.path}: cannot open: {exc.strerror or exc}") from exc
        with self.doing_as("configure"):
            # DuckDB's default cache is 80% of RAM; a bounded cache keeps a long backfill's memory flat
            # (DuckDB spills to <db>.tmp beyond it). Both values are validated sizes (StoreSettings).
            self.run(f"SET memory_limit = '{settings.memory_limit}'")
            # the store runs on its own thread: DuckDB's extra workers only competed with the event loop
            self.run(f"SET threads = {int(settings.threads)}")
            # a checkpoint rewrites the growing last row group of the records: rarely (config's default says
            # what it costs); the rows committed since the last one are evicted to <db>.tmp beyond memory_limit
            self.run(f"SET checkpoint_threshold = '{settings.checkpoint_threshold}'")

    # ------------------------------------------------------------------------------------ translation

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """Turn a DuckDB error (or an OSError from the filesystem under it) raised inside into a StoreError naming
        the store and the current operation, on one line (DuckDB's messages may span several)."""
        try:
            yield
        except self._error as exc:
            raise StoreError(f"store {self.path}: {self.doing}: {_one_line(exc)}") from exc
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise StoreError(f"store {self.path}: {self.doing}: {where}{exc.strerror or exc}") from exc

    @contextlib.contextmanager
    def doing_as(self, what: str) -> Iterator[None]:
        """Name the operation under way. Operations nest (the sink read of a unit reads its records): the
        outermost names the error, since it is what the caller asked for."""
        before = self.doing
        if self._depth == 0:
            self.doing = what
        self._depth += 1
        try:
            with self.translated():
                yield
        finally:
            self._depth -= 1
            self.doing = before

    # ---------------------------------------------------------------------------------------- calls

    def run(self, sql: str, params: Params = ()) -> None:
        with self.translated():
            self._con.execute(sql, _bound(params))

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        with self.translated():
            return list(self._con.execute(sql, _bound(params)).fetchall())

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row (None when there is none); the result is read to its end, so the connection is free
        for the next statement (DuckDB 2 refuses new work while a result is unfinished)."""
        with self.translated():
            rows = self._con.execute(sql, _bound(params)).fetchall()
            return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.one(sql, params)
        return row[0] if row else None

    def arrow_table(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A (small) result as one Arrow table."""
        with self.translated():
            rel = self._con.sql(sql, params=list(params) or None)
            make: Any = getattr(rel, "to_arrow_table", None) or getattr(rel, "arrow")  # noqa: B009
            return make()

    def rows(self, sql: str, params: Sequence[Any] = (), *, batch_rows: int = 10_000) -> Rows:
        """A result read in bounded batches through its own cursor (close it, or use it as a context manager)."""
        with self.translated():
            cur = self._con.cursor()
            try:
                cur.execute(sql, list(params))
            except BaseException:
                cur.close()
                raise
        return Rows(self, cur, batch_rows)

    def arrow_batches(self, sql: str, params: Sequence[Any] = (), *, batch_rows: int = 20_000) -> Iterator[Any]:
        """A result as Arrow record batches of at most ``batch_rows`` rows, read through its own cursor (the
        Parquet export streams them into one file)."""
        with self.translated():
            cur = self._con.cursor()
        try:
            with self.translated():
                # a relation streams Arrow without the copy a DB-API result makes; DuckDB 2 names the reader
                # to_arrow_reader, 1.x fetch_arrow_reader
                rel = cur.sql(sql, params=list(params) or None)
                make: Any = getattr(rel, "to_arrow_reader", None) or getattr(rel, "fetch_arrow_reader")  # noqa: B009
                reader = make(batch_rows)
            while True:
                with self.translated():
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                yield batch
        finally:
            with self.translated():
                cur.close()

    @contextlib.contextmanager
    def registered(self, name: str, table: Any) -> Iterator[None]:
        """``table`` (an Arrow table) visible to SQL as ``name`` inside the block."""
        with self.translated():
            self._con.register(name, table)
        try:
            yield
        finally:
            with self.translated():
                self._con.unregister(name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed when the block ends, rolled back when it raises (the block's error wins
        over a failing rollback)."""
        self.run("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with contextlib.suppress(StoreError):
                self.run("ROLLBACK")
            raise
        self.run("COMMIT")

    def close(self) -> None:
        with self.translated():
            self._con.close()


def _bound(params: Params) -> list[Any] | dict[str, Any]:
    """``params`` as DuckDB binds them: a dict for named parameters, else a list."""
    return dict(params) if isinstance(params, Mapping) else list(params)


def _one_line(exc: BaseException) -> str:
    """DuckDB's message on one line (it may carry a blank line and a 'LINE 1:' excerpt)."""
    return " ".join(str(exc).split())


class Rows:
    """A query's result, streamed in batches: ``columns`` names them; iterating yields lists of rows."""

    def __init__(self, db: Database, cursor: duckdb.DuckDBPyConnection, batch_rows: int) -> None:
        self._db, self._cur, self._batch = db, cursor, batch_rows
        # read after the operation that opened it has returned (an export): errors still name that operation
        self._doing = db.doing
        self.columns: list[str] = [d[0] for d in cursor.description or []]

    def __iter__(self) -> Iterator[list[Row]]:
        while True:
            with self._db.doing_as(self._doing):
                batch = self._cur.fetchmany(self._batch)
            if not batch:
                return
            yield batch

    def close(self) -> None:
        with self._db.doing_as(self._doing):
            self._cur.close()

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class Staged:
    """What is staged for one unit of a run this store began, known without asking DuckDB: nothing but this
    store stages under its own run's id, so its counts are exact. The natural keys are kept as hashes: two
    equal keys have equal hashes, so no duplicate goes unseen (a collision only sends the commit through the
    duplicate path, which finds none)."""

    quarantine: int = 0
    #: the staged rows' key hashes, one a row (:attr:`StageBatch.keys <dbcost.store.records.StageBatch.keys>`)
    keys: array[int] = field(default_factory=lambda: array("q"))


class StoreBase:
    """What the store's parts share: the settings, the path and the translated connection, and what the store
    knows of its own runs' staging (:class:`Staged`)."""

    settings: StoreSettings
    path: Path
    _db: Database
    #: runs this store began (``begin_run``): their units and staging are all this store's doing
    _own_runs: set[str]
    #: units of those runs that have their row (``start_unit``), by staging key
    _started: set[str]
    #: what those runs' units have staged, by staging key (absent: nothing)
    _staged: dict[str, Staged]

    def _forget_staging(self, run_id: str) -> None:
        """The run's staging was deleted: nothing of it is staged any more."""
        prefix = f"{run_id}|"
        for key in [k for k in self._staged if k.startswith(prefix)]:
            del self._staged[key]


def open_database(settings: StoreSettings, *, read_only: bool) -> Database:
    """The connection for ``settings``; a missing directory or (read-only) a missing file is a ConfigError."""
    path = settings.path
    if not read_only and not path.parent.exists():
        raise ConfigError(f"--db {path}: directory {path.parent} does not exist")
    if read_only and not path.exists():
        raise ConfigError(f"--db {path}: no such store (run `dbcost backfill` first)")
    return Database(settings, read_only=read_only)


def operation(what: str) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Declare a public store method: its DuckDB work runs as the operation ``what``, so any DuckDB error in
    it leaves as a StoreError naming ``what``. Generators are wrapped batch by batch."""

    def wrap(fn: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Any:
                db = self._db
                with db.doing_as(what):
                    it = fn(self, *args, **kwargs)
                try:
                    while True:
                        with db.doing_as(what):
                            try:
                                item = next(it)
                            except StopIteration:
                                return
                        yield item
                finally:
                    with db.doing_as(what):
                        it.close()

            gen.__store_operation__ = what  # type: ignore[attr-defined]
            return gen

        @functools.wraps(fn)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            with self._db.doing_as(what):
                return fn(self, *args, **kwargs)

        call.__store_operation__ = what  # type: ignore[attr-defined]
        return call

    return wrap
