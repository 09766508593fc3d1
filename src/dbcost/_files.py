"""Files the user names: reading them with one error shape, and writing them atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbcost.errors import ConfigError

__all__ = ["read_text_file", "write_json"]


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (summary files)."""
    import orjson

    Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


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
