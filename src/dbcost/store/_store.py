"""The synchronous store: its parts (records, state, read models) over one translated DuckDB connection."""

from __future__ import annotations

import contextlib
from pathlib import Path

from dbcost.config import StoreSettings
from dbcost.errors import StoreError
from dbcost.store._db import Database, open_database, operation
from dbcost.store._schema import SCHEMA_VERSION, check_not_newer, migrate, stored_version
from dbcost.store.reads import Reads
from dbcost.store.records import Records
from dbcost.store.state import State

__all__ = ["Store"]


class Store(Records, State, Reads):
    """Synchronous DuckDB store (use :class:`~dbcost.store.AsyncStore` from async code).

    Opening it upgrades the file to this code's schema (see :mod:`dbcost.store._schema`). A read-only open
    upgrades an older store too (through a short read-write open first, so the reads see the schema they
    expect) but never creates one; a store newer than this code is refused either way.
    """

    def __init__(self, path: str | Path | StoreSettings, *, read_only: bool = False) -> None:
        self.settings = path if isinstance(path, StoreSettings) else StoreSettings(path=Path(path))
        self.path = self.settings.path
        self._seq = 0
        self._own_runs, self._started, self._staged = set(), set(), {}
        self._db = open_database(self.settings, read_only=read_only)
        try:
            if read_only:
                self._db = self._upgraded_read_only(self._db)
            else:
                migrate(self._db)
                # staging rows of a killed run survive; new ones continue after them, in order
                with self._db.doing_as("open"):
                    self._seq = int(self._db.scalar("SELECT coalesce(max(seq) + 1, 0) FROM staging"))
        except BaseException:
            with contextlib.suppress(StoreError):
                self._db.close()
            raise

    def _upgraded_read_only(self, db: Database) -> Database:
        with db.doing_as("read schema version"):
            version = stored_version(db)
        check_not_newer(db, version)
        if 0 < version < SCHEMA_VERSION:
            db.close()
            writer = Database(self.settings, read_only=False)
            try:
                migrate(writer)
            finally:
                writer.close()
            db = Database(self.settings, read_only=True)
        return db

    @operation("close")
    def close(self) -> None:
        """Close the connection (DuckDB checkpoints the file)."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
