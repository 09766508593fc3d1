"""``dbcost config show``: the defaults the configuration gives every command, and where each came from.

The configuration is resolved once per invocation by the root command (:func:`dbcost.config.resolve_config`:
a flag beats ``DBCOST_*`` variables, which beat the file, which beats the built-in default) and handed to
click as the commands' default map; this command resolves it the same way and prints it, so what it shows
is what a command would use when the flag is not given.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import dbcost.config
from dbcost.cli.app import UsageError, fail_usage

__all__ = ["config_app"]

config_app = typer.Typer(name="config", help="The configuration: dbcost.toml, [tool.dbcost], DBCOST_* variables.",
                         no_args_is_help=True, add_completion=False)


def _shown(value: object) -> str:
    return "-" if value is None else str(value)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Print every configurable default, its value and where it came from: default, file or env.

    The file is --config FILE (or DBCOST_CONFIG), else ./dbcost.toml, else [tool.dbcost] of ./pyproject.toml;
    each key also has a DBCOST_<KEY> variable, which wins over the file. A flag given to a command wins over
    both. JSON: {"file": PATH or null, "values": [{"key", "value", "source", "from", "option", "env"}]}.
    """
    if format_ not in ("table", "json"):
        fail_usage(f"--format: must be table or json, got {format_!r}")
    try:
        resolved = dbcost.config.resolve_config(ctx.find_root().params.get("config"))
    except UsageError as exc:  # the root command has refused it already; kept for a direct call
        fail_usage(str(exc))
    if format_ == "json":
        typer.echo(orjson.dumps(resolved.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    title = f"Configuration (file: {resolved.file})" if resolved.file is not None else "Configuration (no file)"
    table = Table(title=title, title_justify="left")
    for name in ("Key", "Value", "Source", "Option", "Variable"):
        table.add_column(name)
    for v in resolved.values:
        source = v.source if v.origin is None or v.source == "env" else f"file {v.origin}"
        table.add_row(v.key.name, Text(_shown(v.value)), Text(source), v.key.option, v.key.env)
    Console(width=200).print(table)
