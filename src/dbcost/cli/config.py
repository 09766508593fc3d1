"""``dbcost config show``: the defaults the configuration gives every command, and where each came from.

The configuration is resolved once per invocation by the root command (:func:`dbcost.defaults.resolve_config`:
a flag beats ``DBCOST_*`` variables, which beat the file, which beats the built-in default) and handed to
click as the commands' default map; this command resolves it the same way and prints it, so what it shows
is what a command would use when the flag is not given.
"""

from __future__ import annotations

import typer

import dbcost.defaults
from dbcost.cli.app import UsageError, config_given, fail_usage
from dbcost.cli.options import FormatOpt, OutputOpt, check_output
from dbcost.cli.views import Out

__all__ = ["config_app"]

config_app = typer.Typer(name="config", help="The configuration: dbcost.toml, [tool.dbcost], DBCOST_* variables.",
                         no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")


def _shown(value: object) -> str:
    return "-" if value is None else str(value)


@config_app.command("show")
def config_show(
    format_: FormatOpt = "table",
    output: OutputOpt = "-",
) -> None:
    """Print every configurable default, its value and where it came from: default, file or env.

    The file is --config FILE (or DBCOST_CONFIG), else ./dbcost.toml, else [tool.dbcost] of ./pyproject.toml;
    each key also has a DBCOST_<KEY> variable, which wins over the file. A flag given to a command wins over
    both. JSON: {"file": PATH or null, "values": [{"key", "value", "source", "from", "option", "env"}]}.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from dbcost.report.table import print_table

    try:
        check_output(output)
        resolved = dbcost.defaults.resolve_config(config_given())
    except UsageError as exc:  # the root command has refused it already; kept for a direct call
        fail_usage(str(exc))
    out = Out(output)
    if format_ == "json":
        out.json(resolved.to_json())
        return
    if format_ == "csv":
        out.rows(resolved.to_json()["values"])
        return
    title = f"Configuration (file: {resolved.file})" if resolved.file is not None else "Configuration (no file)"
    table = Table(title=title, title_justify="left")
    for name in ("Key", "Value", "Source", "Option", "Variable"):
        table.add_column(name, overflow="fold")
    for v in resolved.values:
        source = v.source if v.origin is None or v.source == "env" else f"file {v.origin}"
        table.add_row(v.key.name, Text(_shown(v.value)), Text(source), v.key.option, v.key.env)

    def render(console: Console) -> None:
        print_table(console, table, drop=("Variable", "Option"))

    out.draw(render)
