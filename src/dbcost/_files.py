"""Files the user names: reading them with one error shape, and writing them atomically.

* :func:`read_text_file` — the one reader every file option goes through (targets, policy, topology, rules,
  ``--filter @path``): every failure is one :class:`~dbcost.errors.ConfigError` line;
  :func:`read_rules_toml` reads a rules file the user names, or the one a package ships, as TOML.
* :class:`AtomicOutput` — the one writer: a file appears at its path complete or not at all (a temporary
  file beside it, fsync, rename); a failed write keeps what was paid for as ``<path>.partial``, cut back to
  the last :meth:`~AtomicOutput.mark` so that a record torn by a full disk is never left in it.
* :func:`atomic_path` — the same promise for writers that want a path (pyarrow, DuckDB's COPY).
* :func:`write_text_atomic`, :func:`write_json` — whole small files (reports, metrics, summaries).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import IO, Any, cast

from dbcost.errors import ConfigError

__all__ = [
    "AtomicOutput", "TomlTable", "atomic_path", "read_rules_toml", "read_text_file", "write_json", "write_text_atomic",
]


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (summary files), atomically."""
    import orjson

    with AtomicOutput(path) as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def write_text_atomic(path: str | Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, with permission bits ``mode`` if given."""
    with AtomicOutput(path, binary=False, mode=mode) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a path; renamed to ``path`` when the block
    succeeds, removed when it fails, so ``path`` is never half-written."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def read_rules_toml(path: str | Path | None, origin: str, *, package: str, resource: str) -> dict[str, Any]:
    """The TOML of the rules file at ``path``, or of ``package``'s own ``resource`` when ``path`` is None; a file
    that cannot be read or is not TOML is one ConfigError line naming ``origin``."""
    if path is None:
        text = resources.files(package).joinpath(resource).read_text(encoding="utf-8")
    else:
        text = read_text_file(path, origin, "rules file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None


def read_text_file(path: str | Path, where: str, what: str = "") -> str:
    """The UTF-8 text of a file the user named (targets, policy, topology, rules, ``--filter @path``).

    Every way it can fail is one :class:`ConfigError` line, ``"<where>: cannot read[ <what>]: <reason>"``
    or ``"<where>: not UTF-8 text"``, chained to the cause, instead of an ``OSError`` or
    ``UnicodeDecodeError`` traceback; the one reader every file option goes through.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read{' ' + what if what else ''}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text") from exc


class AtomicOutput:
    """A file written under a temporary name and renamed to ``path`` only when complete.

    On failure the temporary file is kept as ``<path>.partial`` (the records in it were paid for) and
    :attr:`partial_path` says where; ``path`` itself is never left half-written. A writer that calls
    :meth:`mark` after each whole record (or batch of records) gets a ``.partial`` holding exactly what was
    written up to its last mark: a write that fails half-way (ENOSPC) leaves no torn line behind. ``None`` or ``"-"``
    means stdout, written directly. The temporary file lives beside the target so the final rename is
    atomic on the same filesystem.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, binary: bool = True, mode: int | None = None) -> None:
        self.path = None if path is None or str(path) == "-" else Path(path)
        # /dev/null, a FIFO, /dev/stdout: written in place; renaming a temp file over them would replace
        # the device node with a regular file
        self.special = self.path is not None and self.path.exists() and not self.path.is_file()
        self.binary = binary
        #: permission bits of the finished file (mkstemp creates 0600; e.g. 0644 for a textfile collector)
        self.mode = mode
        self.partial_path: Path | None = None
        #: bytes of whole records written so far (set by :meth:`mark`); None until the first mark
        self.marked: int | None = None
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

    def mark(self) -> None:
        """Everything written so far is whole records: flush it (an ``OSError`` such as ENOSPC is raised here,
        by the write that failed) and remember where it ends, which is where a failed file is cut back to."""
        f = self._file
        assert f is not None
        f.flush()
        if self._tmp is not None:
            self.marked = os.lseek(f.fileno(), 0, os.SEEK_CUR)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        f = self._file
        assert f is not None
        if self.special:
            f.close()
            return
        if self.path is None or self._tmp is None:
            f.flush()
            return
        if exc_type is None:
            try:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            except OSError:  # the last bytes did not fit: this is a failed file, kept as a failed one is
                self._keep_partial(f)
                raise
            if self.mode is not None:
                os.chmod(self._tmp, self.mode)
            os.replace(self._tmp, self.path)
            return
        self._keep_partial(f)

    def _keep_partial(self, f: IO[Any]) -> None:
        assert self.path is not None and self._tmp is not None
        # the block failed, perhaps on this very file (a full disk): what is still buffered may fail again,
        # and what was written after the last mark may end in a torn record; cut back to the mark
        with contextlib.suppress(OSError, ValueError):
            f.close()
        if self.marked is not None:
            with contextlib.suppress(OSError):
                os.truncate(self._tmp, self.marked)
        if self._tmp.stat().st_size > 0:
            self.partial_path = self.path.with_name(self.path.name + ".partial")
            os.replace(self._tmp, self.partial_path)
        else:
            self._tmp.unlink(missing_ok=True)


class TomlTable:
    """Typed access to one table of a rules file :func:`read_rules_toml` read; every complaint is a
    :class:`ConfigError` naming the file (``origin``) and the entry (``where``). The classifier's and the
    advisor's rules files are both read through it."""

    def __init__(self, origin: str, where: str, table: object) -> None:
        self.origin = origin
        self.where = where
        if not isinstance(table, dict):
            raise self.error(f"expected a table, got {type(table).__name__}")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {self.where}: {message}")

    def get(self, key: str, kind: type[Any], *, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.error(f"missing key {key!r}")
            return default
        value = self.table[key]
        # bool is an int subclass: keep the two apart.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(f"{key!r} must be {kind.__name__}, got {type(value).__name__}")
        return value

    def text(self, key: str, *, default: Any = ...) -> Any:
        value = self.get(key, str, default=default)
        if isinstance(value, str) and not value.strip():
            raise self.error(f"{key!r} must not be empty")
        return value

    def strings(self, key: str, *, default: Any = ...) -> list[str]:
        values = self.get(key, list, default=default)
        if not all(isinstance(v, str) and v for v in values):
            raise self.error(f"{key!r} must be a list of non-empty strings")
        return cast(list[str], values)

    def only(self, allowed: frozenset[str]) -> None:
        """Refuse keys outside ``allowed`` (checked up front, naming what is allowed)."""
        if extra := sorted(set(self.table) - allowed):
            raise self.error(f"unknown key(s) {', '.join(map(repr, extra))} (allowed: {', '.join(sorted(allowed))})")

    def done(self) -> None:
        """Refuse keys no :meth:`get` asked for (checked after reading the entry)."""
        if extra := sorted(set(self.table) - self.used):
            raise self.error(f"unknown key(s) {', '.join(map(repr, extra))}")
