"""The ``dbcost`` typer app: root help, global options, exit codes and the one way a command fails.

Exit codes (every command): 0 done; 1 failed (after saying what completed); 2 bad input (nothing sent,
nothing written); 3 done but records were quarantined and ``--strict`` was given; 130 and 143 stopped by
SIGINT and SIGTERM (128 + the signal). ``quota check`` adds 4 (WARN) and 5 (BREACH) with ``--fail-on``;
``advise`` adds 6 (a new advisory) with ``--fail-on-new``.

Signals: SIGTERM (what ``timeout``, Kubernetes, ECS and systemd send) is handled as SIGINT is. A command
that can stop cleanly asks for :func:`stop_requested` and passes the event to its job, which then ends within
moments with what it completed (a backfill stays resumable, a fetch keeps its ``.partial`` file); the
command says so in one line and returns :func:`exit_for_signal`. Any other command is cancelled. If a
command has not ended :data:`GRACE_S` seconds after the signal, or a second signal comes, it is cancelled
(the same signal again within half a second is not a second one: ``timeout`` sends it to the command and
then to its process group); a command that stays resumable however it ends registers its ``--resume``
command line (:func:`resume_hint`), and the one line of a cancelled run says it.

No traceback reaches a user: click/typer's usage errors are one line (not rich's box) with exit 2, a
library error is one line, an error group is reported by its first dbcost error, an ``OSError`` by its file
and cause, and anything else by one line (its traceback is logged at DEBUG).

A command parses its options into library objects (a :class:`~dbcost.errors.UsageError` there is
:func:`fail_usage`: one line, exit 2), runs the library through :func:`run_async` (which maps the library's
errors to one line on stderr and an exit code) and renders the result. Operator messages go to stderr through
:func:`say`, which follows ``--log-format``; results go to stdout.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NoReturn, TypeVar

import typer
import typer.core

import dbcost
import dbcost.defaults
import dbcost.errors
import dbcost.logs

if TYPE_CHECKING:  # imported where used: `dbcost --version` and `--help` run no event loop and draw nothing
    import asyncio

    from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_QUARANTINED",
    "EXIT_USAGE",
    "GRACE_S",
    "DbcostError",
    "UsageError",
    "app",
    "config_given",
    "configured",
    "err_console",
    "exit_for_signal",
    "fail",
    "fail_usage",
    "interrupted_by",
    "live_progress",
    "resume_hint",
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
#: a signal repeated within this many seconds is the same request, not a second one
_ECHO_S = 0.5

log = logging.getLogger("dbcost.cli")


class _Group(typer.core.TyperGroup):
    """The root command: click's usage errors become one line (``dbcost: error: ...``, exit 2) instead of
    rich's box, whichever command or group raised them."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        _prepare(self)
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


_HELP_NAMES: Final = ["-h", "--help"]
#: choices longer than this are listed in the option's help text instead of its placeholder column
_CHOICES_WIDTH: Final = 16

#: what an option's value is, in help, by the option's name (an option may also set its own ``metavar=``);
#: a flag shows none, a choice its choices, any other option N (a number) or TEXT
_METAVARS: Final = {
    **dict.fromkeys(("--start", "--end", "--today"), "DATE"),
    **dict.fromkeys(("--month", "--start-month", "--end-month"), "MONTH"),
    **dict.fromkeys(("--targets", "--topology", "--policy", "--rules", "--quarantine", "--summary-json",
                     "--metrics-file", "--db", "--fleet", "--config"), "FILE"),
    **dict.fromkeys(("--endpoint-url", "--webhook"), "URL"),
    **dict.fromkeys(("--profile", "--region", "--cluster-tag", "--team-tag", "--env-tag", "--metric", "--target",
                     "--host"), "NAME"),
    **dict.fromkeys(("--request-timeout-s", "--retry-budget-s"), "SECONDS"),
    **dict.fromkeys(("--max-cost-usd", "--min-savings-usd"), "USD"),
    "--output": "PATH|-", "--dir": "DIR", "--sink": "URL", "--filter": "JSON|@FILE", "--group-by": "KEY",
    "--shard": "K/N", "--non-prod": "NAMES", "--dataset": "ID|LABEL|all", "--max-age-hours": "HOURS",
}


def _metavar(param: Any) -> str:
    name = max(param.opts, key=len)
    if name in _METAVARS:
        return _METAVARS[name]
    annotation = param.type_descriptor.annotation
    return "N" if annotation in (int, float) or str(annotation) in ("int | None", "float | None") else "TEXT"


def _range_in_words(param: Any) -> None:
    """A number's allowed range in its help text (``N: 1 to 14``) instead of typer's ``[1<=x<=14]`` beside the
    placeholder, which takes the width the option's own name needs at 80 columns; click still checks it."""
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return
    words = f"{low} to {high}" if low is not None and high is not None else (
        f"at least {low}" if low is not None else f"at most {high}")
    param.help = f"{param.help or ''} ({param.metavar}: {words})".strip()
    param._get_number_range_help_str = lambda: None


#: the root's options that every command takes too (after the command: ``dbcost fetch --log-format json``)
_GLOBAL: Final = ("config", "log_level", "log_format")


def _global_option(root: Any) -> Any:
    """A copy of the root's option for every command: given on the command line after the command, it sets
    what the root's would (``--config`` eagerly, so the command's other options see its defaults); not given,
    or given only by a configured default, it changes nothing (the root's value stands)."""
    sub = copy.copy(root)
    sub.expose_value = False
    sub.default = None
    sub.show_default = False
    sub.is_eager = root.name == "config"
    sub.rich_help_panel = "Global options (before or after the command)"

    def given(ctx: Any, param: Any, value: Any) -> None:
        source = ctx.get_parameter_source(param.name)
        if value is None or getattr(source, "name", None) != "COMMANDLINE":
            return
        if root.name == "config":
            _apply_config(ctx, value)
        else:
            _apply_logging(**{root.name: value})

    sub.callback = given
    return sub


def _prepare(root: Any) -> None:
    """Once, on the built command tree: the root's --config and logging options on every command and group (so
    ``dbcost fetch --log-format json`` works as ``dbcost --log-format json fetch`` does: click parses them,
    ``--opt=value``, ``--`` and bad choices included, and each command's help lists them), and a metavar for
    every option that means something (``DATE``, ``MONTH``, ``N``, ...) instead of the Python type."""
    if getattr(root, "_dbcost_prepared", False):
        return
    root._dbcost_prepared = True
    shared = [p for p in root.params if p.name in _GLOBAL]

    def walk(command: Any, is_root: bool) -> None:
        ctx = command.context_class(command, help_option_names=_HELP_NAMES)
        for param in [*command.params, command.get_help_option(ctx)]:
            if not isinstance(param, typer.core.TyperOption):
                continue
            if param.is_flag:
                param.metavar = ""  # typer shows <bool>
            elif param.type_descriptor.is_choice:
                choices = "|".join(str(c) for c in param.type_descriptor.choices or ())
                if len(choices) <= _CHOICES_WIDTH:
                    param.metavar = choices
                else:  # listed in the help text, where it can wrap, not in the placeholder column
                    param.metavar = max(param.opts, key=len).rsplit("-", 1)[-1].upper()
                    listed = ", ".join(str(c) for c in param.type_descriptor.choices or ())
                    param.help = f"{param.help or ''} One of: {listed}.".strip()
            elif param.metavar is None:
                param.metavar = _metavar(param)
            _range_in_words(param)
        if not is_root:
            command.params.extend(_global_option(p) for p in shared)
        for sub in getattr(command, "commands", {}).values():
            walk(sub, False)

    walk(root, True)


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
    add_completion=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": _HELP_NAMES},
)

_CONSOLE: list[Console] = []


def err_console() -> Console:
    """The rich console on stderr that live progress draws on (made on first use: rich is imported only by a
    command that draws)."""
    if not _CONSOLE:
        from rich.console import Console

        _CONSOLE.append(Console(stderr=True, highlight=False, soft_wrap=True))
    return _CONSOLE[0]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dbcost {dbcost.__version__}")
        raise typer.Exit()


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]


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
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="dbcost's own log level on stderr.")
    ] = "WARNING",
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", case_sensitive=False, help="json: one JSON object per log line.")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _apply_logging(log_level=log_level, log_format=log_format)
    _apply_config(ctx, config)


#: the logging the root options (given before or after the command) ask for; the last one given wins
_LOGGING = {"log_level": "WARNING", "log_format": "text"}


def _apply_logging(**given: str) -> None:
    _LOGGING.update({k: v for k, v in given.items() if v is not None})
    fmt = _LOGGING["log_format"].lower()
    dbcost.logs.setup_logging(_LOGGING["log_level"].upper(), "json" if fmt == "json" else "text")
    _JSON_LOGS["on"] = fmt == "json"


def _apply_config(ctx: Any, config: str | None) -> None:
    """Resolve the configuration (``--config`` or the default places) into click's configured defaults for
    ``ctx``'s command tree: the root's (before the command), or one command's (``--config`` after it)."""
    _CONFIG_GIVEN["path"] = config
    try:
        resolved = dbcost.defaults.resolve_config(config)
    except dbcost.errors.ConfigError as exc:
        fail_usage(str(exc))
    # click's mechanism for configured defaults: a flag on the command line still wins over a default_map
    _CONFIGURED.clear()
    _CONFIGURED.update(resolved.overrides())
    ctx.default_map = _default_map(ctx.command, _CONFIGURED)


#: set by the root callback: the values the configuration (file or DBCOST_* variables) gave option defaults
_CONFIGURED: dict[str, Any] = {}


#: the --config the command line gave (before or after the command; None: the default places)
_CONFIG_GIVEN: dict[str, str | None] = {"path": None}


def config_given() -> str | None:
    """The ``--config FILE`` given, before or after the command (None: the default places)."""
    return _CONFIG_GIVEN["path"]


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
    else:  # plain text (while rich's live progress draws, it redirects stderr and prints this above itself)
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def live_progress() -> bool:
    """Whether rich progress may draw on stderr: a terminal, and no JSON log lines to interleave with. Rich
    decides what a terminal is; it is not imported to say that a pipe is not one (rich's own answer whenever
    stderr is not a tty and neither FORCE_TERMINAL nor TTY_COMPATIBLE is set)."""
    if _JSON_LOGS["on"]:
        return False
    if not sys.stderr.isatty() and "FORCE_TERMINAL" not in os.environ and "TTY_COMPATIBLE" not in os.environ:
        return False
    return err_console().is_terminal


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
        self.received_at = 0.0
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled_by_us = False
        #: the command line that continues the command if it is cut short (:func:`resume_hint`)
        self.hint: str | None = None

    def on_signal(self, sig: signal.Signals) -> None:
        import asyncio

        first = self.received is None
        now = time.monotonic()
        if not first and sig == self.received and now - self.received_at < _ECHO_S:
            return  # the same request again: timeout(1) signals the command, then its whole process group
        if first:
            self.received, self.received_at = sig, now
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
    import asyncio

    state = _SIGNALS[-1]
    if state.stop is None:
        state.stop = asyncio.Event()
    return state.stop


def resume_hint(command_line: str) -> None:
    """For a command that stays resumable however it is stopped (inside :func:`run_async`): the command line
    that continues it, said if it is cancelled (a second signal, the grace period over) or interrupted
    before its own clean stop could say it."""
    _SIGNALS[-1].hint = command_line


def _interrupted(sig: signal.Signals, state: _Signals) -> None:
    hint = f"; continue with: {state.hint}" if state.hint else ""
    say(f"dbcost: interrupted by {sig.name}{hint}", level="error")


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
    import asyncio

    state = _Signals()
    _SIGNALS.append(state)
    try:
        return asyncio.run(_call(main, state))
    except asyncio.CancelledError:
        sig = state.received or signal.SIGINT
        _interrupted(sig, state)
        raise typer.Exit(exit_for_signal(sig)) from None
    except KeyboardInterrupt:
        _interrupted(signal.SIGINT, state)
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
    import asyncio

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
