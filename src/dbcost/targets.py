"""Targets: the payer accounts / organisations a backfill reads, from a TOML or YAML file.

::

    [[target]]
    name = "payer-eu"                 # required, unique; stored with every record
    profile = "billing-eu"            # an AWS profile, or:
    role_arn = "arn:aws:iam::111122223333:role/dbcost-read"   # a role to assume (from the default chain)
    external_id = "..."               # optional, with role_arn
    region = "us-east-1"              # optional
    endpoint_url = "http://127.0.0.1:4566"   # optional (e.g. the emulator)
    max_rps = 5                       # optional: this target's own rate
    max_concurrency = 8               # optional

Each target gets its own governor and breaker: one failing target does not stop the others.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dbcost.errors import ConfigError, read_text_file

__all__ = ["TargetConfig", "load_targets"]

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_RE)
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    external_id: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_rps: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)


def load_targets(path: str | Path) -> list[TargetConfig]:
    """Read and validate a targets file (``.toml``, ``.yaml``/``.yml``); errors name the file and entry."""
    p = Path(path)
    text = read_text_file(p, f"--targets {p}")
    data: Any
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"--targets {p}: not valid {'YAML' if p.suffix.lower() in ('.yaml', '.yml') else 'TOML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    entries = data.get("target", data.get("targets")) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"--targets {p}: expected a list of [[target]] entries")
    out: list[TargetConfig] = []
    for i, entry in enumerate(entries, 1):
        try:
            out.append(TargetConfig.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in err["loc"]) or "entry"
            msg = re.sub(r"^Value error, ", "", err["msg"])
            raise ConfigError(f"--targets {p}: target #{i}: {loc}: {msg}") from None
    names = [t.name for t in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"--targets {p}: duplicate target name(s): {', '.join(sorted(dup))}")
    return out
