"""Logging setup for the CLI: human lines or JSON lines on stderr, and no credentials, ever.

botocore and aiobotocore log request headers (``X-Amz-Security-Token``) and signing details at DEBUG, so
their loggers are pinned at WARNING or above whatever dbcost's own level is. dbcost's own messages never
include credentials: transports format only operation names, codes, statuses and service messages.

The libraries' records go through dbcost's handler (the same text or JSON lines), never through Python's
last-resort handler (an unformatted line on stderr): at WARNING when the user asked for INFO or DEBUG, and
not at all at dbcost's default level, where a failure is the one line dbcost itself prints (aiokafka, for
one, logs "Unable connect to node" at ERROR before the sink names the cause).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import orjson

__all__ = ["LogFormat", "json_line", "setup_logging"]

LogFormat = Literal["text", "json"]

_QUIET_LIBRARIES = ("botocore", "aiobotocore", "aioboto3", "boto3", "urllib3", "s3transfer", "aiokafka",
                    "asyncio", "aiohttp.access")


def json_line(level: str, logger: str, message: str, **fields: Any) -> str:
    """One JSON log line (the shape of every line under --log-format json): ``ts, level, logger, message``
    and then ``fields`` (counters as numbers, not words of the message); a field never replaces those four."""
    now = time.time()
    entry: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "level": level,
        "logger": logger,
        "message": message,
    }
    entry.update((k, v) for k, v in fields.items() if k not in entry)
    return orjson.dumps(entry, default=str).decode()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "WARNING", fmt: LogFormat = "text") -> None:
    """Configure the ``dbcost`` logger tree on stderr (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("dbcost")
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    library_level = logging.WARNING if root.level <= logging.INFO else logging.CRITICAL + 1
    for name in _QUIET_LIBRARIES:
        lib = logging.getLogger(name)
        for h in list(lib.handlers):
            lib.removeHandler(h)
        lib.addHandler(handler)
        lib.setLevel(library_level)
        lib.propagate = False
