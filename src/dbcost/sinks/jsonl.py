"""``jsonl:PATH`` (also ``jsonl://PATH``): append every unit's records to one JSONL file, flushed and
fsynced per unit.

Each line is the ``dbcost fetch`` record shape plus ``key``, ``dataset``, ``target``, ``version`` and
``run_id`` (``deleted: true`` for a record a restatement removed). Append-only, so a resumed unit may
appear twice: keep the highest version per ``key``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from dbcost.errors import ConfigError, SinkError
from dbcost.sinks._common import file_path
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef

__all__ = ["JsonlOptions", "JsonlSink"]


@dataclass(frozen=True, kw_only=True)
class JsonlOptions(SinkOptions):
    """A parsed ``jsonl:PATH``."""

    path: Path


class JsonlSink(SinkBase):
    """Appends each unit to ``PATH``; see the module doc."""

    @classmethod
    def parse(cls, url: str) -> JsonlOptions:
        return JsonlOptions(url=url, path=file_path(url))

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> JsonlSink:
        return cls(cls.parse(url))

    def __init__(self, options: JsonlOptions) -> None:
        self.path = options.path
        self.name = f"jsonl:{self.path}"
        self._f: IO[bytes] | None = None

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise ConfigError(f"--sink {self.name}: directory {self.path.parent} does not exist")
        try:
            self._f = self.path.open("ab")
        except OSError as exc:
            raise ConfigError(f"--sink {self.name}: cannot open: {exc.strerror}") from None

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        if self._f is None:
            raise SinkError(f"{self.name}: not open")
        n = 0
        try:
            async for batch in batches:
                self._f.write(b"".join(orjson.dumps({"key": r.key, **r.to_message()}) + b"\n" for r in batch))
                n += len(batch)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise SinkError(f"{self.name}: write failed: {exc.strerror}") from exc
        return n

    async def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
