"""The ``dbcost`` typer app: root help, global options, exit codes and the one way a command fails.

Exit codes (every command): 0 done; 1 failed (after saying what completed); 2 bad input (nothing sent,
nothing written); 3 done but records were quarantined and ``--strict`` was given; 130 and 143 stopped by
SIGINT and SIGTERM (128 + the signal). ``quota check`` adds 4 (WARN) and 5 (BREACH) with ``--fail-on``;
``advise`` adds 6 (a new advisory) with ``--fail-on-new``.

Signals: SIGTERM (what ``timeout``, Kubernetes, ECS and systemd send) is handled as SIGINT is. A command
that can stop cleanly asks for :func:`stop_requested` and passes the event to its job, which then ends within
moments with what it completed (a backfill stays resumable, a fetch keeps its ``.partial`` file); the
command says so in one line and returns :func:`exit_for_signal`. Any other command is cancelled. If a
command has not ended :data:`GRACE_S` seconds after the signal, or a second signal comes, it is cancelled.

No traceback reaches a user: click/typer's usage errors are one line (not rich's box) with exit 2, a
library error is one line, an error group is reported by its first dbcost error, an ``OSError`` by its file
and cause, and anything else by one line (its traceback is logged at DEBUG).

A command parses its options into library objects (a :class:`~dbcost.errors.UsageError` there is
:func:`fail_usage`: one line, exit 2), runs the library through :func:`run_async` (which maps the library's
errors to one line on stderr and an exit code) and renders the result. Operator messages go to stderr through
:func:`say`, which follows ``--log-format``; results go to stdout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import typer.core
from rich.console import Console

import dbcost
import dbcost.config
import dbcost.errors
import dbcost.logs

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_QUARANTINED",
    "EXIT_USAGE",
    "GRACE_S",
    "DbcostError",
    "UsageError",
    "app",
    "configured",
    "err_console",
    "exit_for_signal",
    "fail",
    "fail_usage",
    "interrupted_by",
    "live_progress",
    "run_async",
    "say",
    "stop_requested",
]

DbcostError = dbcost.errors.DbcostError
UsageError = dbcost.errors.UsageError

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3
#: a command still running this long after SIGTERM/SIGINT is cancelled
GRACE_S = 10.0

log = logging.getLogger("dbcost.cli")


class _Group(typer.core.TyperGroup):
    """The root command: click's usage errors become one line (``dbcost: error: ...``, exit 2) instead of
    rich's box, whichever command or group raised them."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False,
                              windows_expand_args=windows_expand_args, **extra)
        except typer.TyperException as exc:  # click's ClickException (typer carries its own click)
            if not standalone_mode:
                raise
            # `dbcost` or `dbcost quota` alone: typer has printed the help (typer itself tests the name)
            if type(exc).__name__ != "NoArgsIsHelpError":
                ctx = getattr(exc, "ctx", None)
                where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
                say(f"dbcost: error: {' '.join(exc.format_message().split())}{where}", level="error")
            sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
        except typer.Abort:
            if not standalone_mode:
                raise
            say("dbcost: aborted", level="error")
            sys.exit(EXIT_FAILED)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


app = typer.Typer(
    cls=_Group,
    name="dbcost",
    help=(
        "Async ingestion of AWS Cost Explorer data for database cost attribution and quota automation.\n\n"
        "Every page is fetched, every group is a validated record or a quarantined one, money is exact "
        "Decimal end to end. Credentials come from the standard AWS chain (env, ~/.aws files, SSO, "
        "instance/container roles); --profile picks a profile; --endpoint-url or "
        "AWS_ENDPOINT_URL_COST_EXPLORER points at another endpoint (e.g. `dbcost emulator serve`).\n\n"
        "Exit codes: 0 done, 1 failed (after saying what completed), 2 bad input, "
        "3 records quarantined with --strict, 4/5 quota WARN/BREACH (quota check --fail-on), 6 a new advisory "
        "(advise --fail-on-new), 130/143 stopped by SIGINT/SIGTERM (resumable)."
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
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option("--config", metavar="FILE",
                     help="Configuration file (default: DBCOST_CONFIG, else ./dbcost.toml, else [tool.dbcost] of "
                          "./pyproject.toml): defaults for --db, --endpoint-url, --profile, --region, --targets, "
                          "the tags, --policy, --topology, --max-rps, --max-concurrency. A flag beats DBCOST_* "
                          "variables, which beat the file. `dbcost config show` prints the result."),
    ] = None,
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
    try:
        resolved = dbcost.config.resolve_config(config)
    except dbcost.errors.ConfigError as exc:
        fail_usage(str(exc))
    # click's mechanism for configured defaults: a flag on the command line still wins over a default_map
    _CONFIGURED.clear()
    _CONFIGURED.update(resolved.overrides())
    ctx.default_map = _default_map(ctx.command, _CONFIGURED)


#: set by the root callback: the values the configuration (file or DBCOST_* variables) gave option defaults
_CONFIGURED: dict[str, Any] = {}


def configured(name: str, value: object) -> bool:
    """Whether ``value`` of option ``name`` is the configuration's (a file or a ``DBCOST_*`` variable), not a
    flag's. (A flag repeating the configured value counts as configured: it means the same.)"""
    return value is not None and name in _CONFIGURED and _CONFIGURED[name] == value


#: groups whose options mean something else (the emulator's --max-rps is the server's own limit)
_UNCONFIGURED = frozenset({"emulator"})


def _default_map(command: Any, values: dict[str, Any]) -> dict[str, Any]:
    """click's ``default_map`` for the command tree under ``command``: every option named as a configuration
    key gets that key's value as its default, in every command and group (``{"quota": {"check": {...}}}``)."""
    out: dict[str, Any] = {p.name: values[p.name] for p in command.params if p.name in values}
    for name, sub in getattr(command, "commands", {}).items():
        if name not in _UNCONFIGURED:
            out[name] = _default_map(sub, values)
    return out


#: set by the root callback: --log-format json turns operator messages into JSON log lines
_JSON_LOGS = {"on": False}


def say(message: str, *, level: str = "info", fields: Mapping[str, Any] | None = None) -> None:
    """A message for the operator on stderr: plain text, or a JSON log line with --log-format json. ``fields``
    (counters, a status) become the JSON line's own fields, beside ``ts, level, logger, message``, so a log
    shipper reads them without parsing the text; a text line is the message alone (it already says them)."""
    if _JSON_LOGS["on"]:
        sys.stderr.write(dbcost.logs.json_line(level, "dbcost.cli", message, **dict(fields or {})) + "\n")
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


class _Signals:
    """The signals one :func:`run_async` saw, and what they do (module docstring)."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled_by_us = False

    def on_signal(self, sig: signal.Signals) -> None:
        first = self.received is None
        if first:
            self.received = sig
        if first and self.stop is not None:
            self.stop.set()  # the command stops cleanly; it is cancelled if it does not within GRACE_S
            asyncio.get_running_loop().call_later(GRACE_S, self._cancel)
        else:
            self._cancel()

    def _cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.cancelled_by_us = True
            self.task.cancel()


_SIGNALS: list[_Signals] = []


def stop_requested() -> asyncio.Event:
    """For a command that can stop cleanly (inside :func:`run_async`): the event SIGTERM/SIGINT sets. Asking
    for it is what makes the signal set it instead of cancelling the command."""
    state = _SIGNALS[-1]
    if state.stop is None:
        state.stop = asyncio.Event()
    return state.stop


def interrupted_by() -> signal.Signals | None:
    """The signal that asked the running command to stop (None: no signal came)."""
    return _SIGNALS[-1].received if _SIGNALS else None


def exit_for_signal(sig: signal.Signals) -> int:
    """128 + the signal: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(sig)


def _first_dbcost_error(group: BaseExceptionGroup[Any]) -> DbcostError | None:
    for exc in group.exceptions:
        if isinstance(exc, DbcostError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_dbcost_error(exc)
            if found is not None:
                return found
    return None


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine under the signal handlers; map every error to one line on stderr and an exit
    code (module docstring)."""
    state = _Signals()
    _SIGNALS.append(state)
    try:
        return asyncio.run(_call(main, state))
    except asyncio.CancelledError:
        sig = state.received or signal.SIGINT
        say(f"dbcost: interrupted by {sig.name}", level="error")
        raise typer.Exit(exit_for_signal(sig)) from None
    except KeyboardInterrupt:
        say("dbcost: interrupted", level="error")
        raise typer.Exit(exit_for_signal(signal.SIGINT)) from None
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    except BaseExceptionGroup as group:
        found = _first_dbcost_error(group)
        if found is None:
            _internal(group)
        if isinstance(found, UsageError):
            fail_usage(str(found))
        fail(found)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        log.debug("OSError", exc_info=True)
        say(f"dbcost: failed: {where}{exc.strerror or exc}", level="error")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as exc:
        _internal(exc)
    finally:
        _SIGNALS.remove(state)


def _internal(exc: BaseException) -> NoReturn:
    """A bug: one line for the user, the traceback in the DEBUG log."""
    log.debug("internal error", exc_info=exc)
    say(f"dbcost: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
        "(--log-level DEBUG shows where)", level="error")
    raise typer.Exit(EXIT_FAILED) from None


async def _call(main: Callable[[], Awaitable[T]], state: _Signals) -> T:
    loop = asyncio.get_running_loop()
    state.task = asyncio.current_task()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, state.on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (a test runner)
            pass
    try:
        return await main()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
