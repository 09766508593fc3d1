"""The defaults the command line shows, and the configuration file and ``DBCOST_*`` variables that replace them.

Light on purpose (the standard library and dbcost's own floors, no pydantic): every command is mounted, and
``--help`` and ``--version`` answer, without building the :class:`~dbcost.config.Settings` models
(``tests/test_architecture.py`` holds it). :mod:`dbcost.config` re-exports every name here, so
``dbcost.config.DEFAULT_DB`` and ``dbcost.config.resolve_config`` stay where a caller finds them; what the names
mean is told there (Limits; Configuration file and environment).

* the store file and the run limits: :data:`DEFAULT_DB`, :data:`DEFAULT_MAX_REQUESTS`,
  :data:`DEFAULT_MAX_CHAIN_PAGES`, :data:`DEFAULT_IDLE_PAGES`, :data:`DEFAULT_REQUEST_TIMEOUT_S`,
  :data:`DEFAULT_RETRY_BUDGET_S`;
* the endpoint and region as botocore will take them: :func:`check_endpoint_and_region`;
* the configuration: :data:`CONFIG_KEYS` and :func:`resolve_config` (a flag beats the environment, which beats
  the file, which beats the default).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from dbcost._files import read_text_file
from dbcost.errors import ConfigError
from dbcost.governor import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS
from dbcost.retry import RetryPolicy

__all__ = [
    "CONFIG_FILE",
    "CONFIG_KEYS",
    "DEFAULT_CLUSTER_TAG",
    "DEFAULT_DB",
    "DEFAULT_IDLE_PAGES",
    "DEFAULT_MAX_CHAIN_PAGES",
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_RETRY_BUDGET_S",
    "DEFAULT_TEAM_TAG",
    "REGION_RE",
    "ConfigKey",
    "ConfigValue",
    "ResolvedConfig",
    "check_endpoint_and_region",
    "endpoint_problem",
    "resolve_config",
]

#: the store file a command uses when ``--db`` is not given
DEFAULT_DB = Path("dbcost.duckdb")
#: requests one run may send unless told otherwise ($50 at $0.01 each; every attempt counts)
DEFAULT_MAX_REQUESTS = 5000
#: pages one page chain may take unless told otherwise ($5): a chain a server never ends stops here
DEFAULT_MAX_CHAIN_PAGES = 500
#: pages in a row that may bring no new group, each with a fresh token, before the chain is refused
DEFAULT_IDLE_PAGES = 3
#: seconds one request may take, connect to the last byte of the body
DEFAULT_REQUEST_TIMEOUT_S = 60.0
#: seconds one call may take, every attempt and backoff included (RetryPolicy's own default)
DEFAULT_RETRY_BUDGET_S = RetryPolicy().budget_s


# ------------------------------------------------------------------------------- endpoint and region

#: what botocore accepts as a region name (it refuses anything else when the client is made)
REGION_RE: Final = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Cost Explorer endpoint (None: it can). Checked before anything is sent."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:4566"
    return None


def _shown(url: str) -> str:
    """A URL for a message: without its userinfo (it may hold a password)."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail.split("/", 1)[0]:
        return f"{head}://***@{tail.split('@', 1)[1]}"
    return url


def check_endpoint_and_region(endpoint_url: str | None, region: str | None, *, where: str = "") -> None:
    """``--endpoint-url`` and ``--region`` as botocore will take them, else one ConfigError line (exit 2)."""
    if endpoint_url is not None:
        why = endpoint_problem(endpoint_url)
        if why is not None:
            raise ConfigError(f"{where}--endpoint-url {_shown(endpoint_url)}: {why}")
    if region is not None and not REGION_RE.fullmatch(region):
        raise ConfigError(f"{where}--region {region!r}: not a region name (letters, digits and '-', like us-east-1)")


# ------------------------------------------------------------------------- configuration file and environment

#: the configuration file looked for in the working directory (then ``pyproject.toml``'s ``[tool.dbcost]``)
CONFIG_FILE = "dbcost.toml"
#: the tag keys attribution reads by default (the ``--cluster-tag`` / ``--team-tag`` defaults)
DEFAULT_CLUSTER_TAG = "db-cluster"
DEFAULT_TEAM_TAG = "team"


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of the configuration: the option whose default it sets, its variable, its type and default
    (the option's own default; ``tests/test_config.py`` holds the two equal)."""

    name: str
    option: str
    kind: type
    default: Any = None
    #: a file path: relative to the configuration file's directory when it comes from the file
    path: bool = False
    #: the smallest value a number may take (the option's own ``min``)
    minimum: float | None = None

    @property
    def env(self) -> str:
        return "DBCOST_" + self.name.upper()


#: every key a configuration file or a ``DBCOST_*`` variable may set, in the order ``config show`` lists them
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("db", "--db", str, str(DEFAULT_DB), path=True),
    ConfigKey("endpoint_url", "--endpoint-url", str),
    ConfigKey("profile", "--profile", str),
    ConfigKey("region", "--region", str),
    ConfigKey("targets", "--targets", str, path=True),
    ConfigKey("cluster_tag", "--cluster-tag", str, DEFAULT_CLUSTER_TAG),
    ConfigKey("team_tag", "--team-tag", str, DEFAULT_TEAM_TAG),
    ConfigKey("policy", "--policy", str, path=True),
    ConfigKey("topology", "--topology", str, path=True),
    ConfigKey("max_rps", "--max-rps", float, DEFAULT_MAX_RPS, minimum=0.01),
    ConfigKey("max_concurrency", "--max-concurrency", int, DEFAULT_MAX_CONCURRENCY, minimum=1),
)
_KEYS = {k.name: k for k in CONFIG_KEYS}


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """A key's resolved value and where it came from: ``default``, ``file`` (``origin``: the file) or ``env``
    (``origin``: the variable)."""

    key: ConfigKey
    value: Any
    source: str
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key.name, "value": self.value, "source": self.source, "from": self.origin,
                "option": self.key.option, "env": self.key.env}


@dataclass(frozen=True)
class ResolvedConfig:
    """Every key of :data:`CONFIG_KEYS`, resolved (environment over file over default), and the file read."""

    file: Path | None
    values: tuple[ConfigValue, ...]

    def overrides(self) -> dict[str, Any]:
        """key -> value of every key the environment or the file set (what replaces an option's default)."""
        return {v.key.name: v.value for v in self.values if v.source != "default"}

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.file) if self.file is not None else None,
                "values": [v.to_json() for v in self.values]}


def _typed(key: ConfigKey, raw: Any, where: str) -> Any:
    """``raw`` as ``key``'s type, or one ConfigError line naming ``where`` (the file or the variable)."""
    if key.kind is str:
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{where}: {key.name}: expected a non-empty string, got {raw!r}")
        value: Any = raw
    else:
        try:
            if isinstance(raw, bool) or (key.kind is int and isinstance(raw, float)):
                raise ValueError
            value = key.kind(raw)
        except (TypeError, ValueError):
            noun = "a whole number" if key.kind is int else "a number"
            raise ConfigError(f"{where}: {key.name}: expected {noun}, got {raw!r}") from None
        if key.minimum is not None and value < key.minimum:
            raise ConfigError(f"{where}: {key.name}: must be at least {key.minimum:g}, got {raw!r}")
    if key.name in ("endpoint_url", "region"):
        check_endpoint_and_region(value if key.name == "endpoint_url" else None,
                                  value if key.name == "region" else None, where=f"{where}: ")
    return value


def _find_file(explicit: str | Path | None, cwd: Path) -> tuple[Path, dict[str, Any]] | None:
    """The configuration file and its table: ``explicit`` (must be readable), else ``dbcost.toml`` in
    ``cwd``, else ``[tool.dbcost]`` of ``cwd/pyproject.toml`` (a pyproject without it, or that is not TOML
    and never mentions dbcost, is not ours: ignored)."""
    candidates: list[tuple[Path, bool]] = (
        [(Path(explicit), True)] if explicit is not None
        else [(cwd / CONFIG_FILE, False), (cwd / "pyproject.toml", False)])
    for path, required in candidates:
        if not required and not path.is_file():
            continue
        shown = f"--config {path}" if required else str(path)
        text = read_text_file(path, shown)
        pyproject = path.name == "pyproject.toml"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            if pyproject and "[tool.dbcost]" not in text:
                continue
            raise ConfigError(f"{shown}: not valid TOML: {str(exc).splitlines()[0]}") from None
        if pyproject:
            table = data.get("tool", {}).get("dbcost") if isinstance(data.get("tool"), dict) else None
            if table is None:
                continue
            if not isinstance(table, dict):
                raise ConfigError(f"{shown}: [tool.dbcost] must be a table")
            return path, table
        return path, data
    return None


def resolve_config(config_file: str | Path | None = None, *, cwd: Path | None = None,
                   environ: Mapping[str, str] | None = None) -> ResolvedConfig:
    """The configuration (module docstring): ``config_file`` or the file found in ``cwd``, then the
    ``DBCOST_*`` variables of ``environ`` over it (an empty variable is unset). Every problem — an unknown
    key, a value of the wrong type, a file that cannot be read — is one ConfigError line naming the key and
    the file or variable."""
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    explicit = config_file if config_file is not None else (env.get("DBCOST_CONFIG") or None)
    found = _find_file(explicit, here)
    from_file: dict[str, Any] = {}
    file: Path | None = None
    if found is not None:
        file, table = found
        where = f"{file} [tool.dbcost]" if file.name == "pyproject.toml" else str(file)
        for name, raw in table.items():
            key = _KEYS.get(name)
            if key is None:
                raise ConfigError(f"{where}: unknown key {name!r} (known: {', '.join(_KEYS)})")
            value = _typed(key, raw, where)
            if key.path and not Path(value).is_absolute():
                value = value if file.parent.resolve() == here.resolve() else str(file.parent / value)
            from_file[name] = value
    values: list[ConfigValue] = []
    for key in CONFIG_KEYS:
        raw_env = env.get(key.env)
        if raw_env:
            values.append(ConfigValue(key, _typed(key, raw_env, key.env), "env", key.env))
        elif key.name in from_file:
            values.append(ConfigValue(key, from_file[key.name], "file", str(file)))
        else:
            values.append(ConfigValue(key, key.default, "default"))
    return ResolvedConfig(file, tuple(values))
