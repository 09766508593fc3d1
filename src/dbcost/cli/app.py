"""The ``dbcost`` typer app: root help, global options, exit codes and the one way a command fails.

Exit codes (every command): 0 done; 1 failed (after saying what completed); 2 bad input (nothing sent,
nothing written); 3 done but records were quarantined and ``--strict`` was given. ``quota check`` adds
4 (WARN) and 5 (BREACH) with ``--fail-on``.

A command parses its options into library objects (a :class:`~dbcost.errors.UsageError` there is
:func:`fail_usage`: one line, exit 2), runs the library through :func:`run_async` (which maps the library's
errors to one line on stderr and an exit code) and renders the result. Operator messages go to stderr through
:func:`say`, which follows ``--log-format``; results go to stdout.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

import dbcost
import dbcost.errors
import dbcost.logs

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_QUARANTINED",
    "EXIT_USAGE",
    "DbcostError",
    "UsageError",
    "app",
    "err_console",
    "fail",
    "fail_usage",
    "live_progress",
    "run_async",
    "say",
]

DbcostError = dbcost.errors.DbcostError
UsageError = dbcost.errors.UsageError

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3

app = typer.Typer(
    name="dbcost",
    help=(
        "Async ingestion of AWS Cost Explorer data for database cost attribution and quota automation.\n\n"
        "Every page is fetched, every group is a validated record or a quarantined one, money is exact "
        "Decimal end to end. Credentials come from the standard AWS chain (env, ~/.aws files, SSO, "
        "instance/container roles); --profile picks a profile; --endpoint-url or "
        "AWS_ENDPOINT_URL_COST_EXPLORER points at another endpoint (e.g. `dbcost emulator serve`).\n\n"
        "Exit codes: 0 done, 1 failed (after saying what completed), 2 bad input, "
        "3 records quarantined with --strict."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dbcost {dbcost.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option("--log-level", help="dbcost's own log level on stderr: DEBUG, INFO, WARNING, ERROR.")
    ] = "WARNING",
    log_format: Annotated[
        str, typer.Option("--log-format", help="text, or json for one JSON object per log line.")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if log_format not in ("text", "json"):
        fail_usage(f"--log-format: must be text or json, got {log_format!r}")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        fail_usage(f"--log-level: unknown level {log_level!r}")
    dbcost.logs.setup_logging(log_level, "json" if log_format == "json" else "text")
    _JSON_LOGS["on"] = log_format == "json"


#: set by the root callback: --log-format json turns operator messages into JSON log lines
_JSON_LOGS = {"on": False}


def say(message: str, *, level: str = "info") -> None:
    """A message for the operator on stderr: plain text, or a JSON log line with --log-format json."""
    if _JSON_LOGS["on"]:
        sys.stderr.write(dbcost.logs.json_line(level, "dbcost.cli", message) + "\n")
        sys.stderr.flush()
    else:
        err_console.print(message, markup=False)


def live_progress() -> bool:
    """Whether rich progress may draw on stderr: a terminal, and no JSON log lines to interleave with."""
    return err_console.is_terminal and not _JSON_LOGS["on"]


def fail_usage(message: str) -> NoReturn:
    """Bad input: one error line, exit 2."""
    say(f"dbcost: error: {message}", level="error")
    raise typer.Exit(EXIT_USAGE)


def fail(exc: DbcostError) -> NoReturn:
    """The library failed: one error line, exit 1."""
    say(f"dbcost: failed: {exc}", level="error")
    raise typer.Exit(EXIT_FAILED) from None


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; map dbcost errors to one line on stderr and an exit code."""
    try:
        return asyncio.run(_call(main))
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    except KeyboardInterrupt:
        say("dbcost: interrupted")
        raise typer.Exit(130) from None


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()
