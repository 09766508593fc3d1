"""The ``dbcost`` command line (typer + rich). Reaches the library through the public ``dbcost`` package only.

``app`` (global options, exit codes, the async runner) lives in :mod:`dbcost.cli.app`; shared options in
:mod:`~dbcost.cli.options`; what is drawn in :mod:`~dbcost.cli.views`; each command group in its own module.
The command modules declare their commands and this module mounts them, in one list, so the order of
``dbcost --help`` is written down here rather than left to the order of imports.

Every command is mounted on every start, so mounting is light: a command module imports its use-case
(``dbcost.jobs.*``), rich and whatever else only its work needs inside the command function, and its
signature's defaults come from :mod:`dbcost.defaults`; ``dbcost --version`` imports no use-case, no pydantic
and no rich, and ``dbcost backfill`` none of the other commands' libraries (``tests/test_architecture.py``).

Typer turns every mounted command into its click form (signature, type hints, one option object per parameter)
when it starts, whichever command runs: about 80 ms of CPU per start, for every cron run. ``dbcost <command> ...``
(the command's name first) has its own command built alone (:func:`_one_command`); anything else (``dbcost``,
``--help``, a root option first, a misspelt name that wants its suggestion, shell completion) builds the whole
tree as before. The one command's options, help and errors are what the whole tree gives it.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

import typer.models

import dbcost.emulator.cli
from dbcost.cli import advise, attribute, backfill, config, datasets, demo, export, fetch, quota, report, resources
from dbcost.cli.app import EXIT_OK, app

__all__ = ["app", "main"]

# commands first, then groups (typer lists them that way), each in the order of `dbcost --help`
app.command()(fetch.fetch)
app.command()(backfill.backfill)
app.command()(backfill.sync)
app.command()(datasets.datasets)
app.command()(export.export)
app.command()(demo.demo)
app.command()(attribute.attribute)
app.command()(resources.resources)
app.command()(report.report)
app.command()(advise.advise)
app.add_typer(dbcost.emulator.cli.app, name="emulator", help="A local Cost Explorer look-alike (for trying dbcost).")
app.add_typer(quota.quota_app, name="quota")
app.add_typer(config.config_app, name="config")


#: the cyclic collector's first-generation threshold in the CLI process (Python's default is 700). The count is of
#: container objects made and not yet freed, so the pages' objects (freed by reference counting within a page)
#: hardly move it; what does is what the command imports after start-up (aiobotocore and botocore's models: about
#: 100,000 objects, out of reach of the start's ``gc.freeze``) and cyclic garbage. At 700 the collector ran every
#: few groups (about a third of a backfill's CPU); at 10,000 it still ran a dozen times, tracing the imported
#: models again each time (60 ms of a 92-day backfill, bench/bench_cpu.py); at 200,000 a run's collections are
#: the imports' own. Cycles are still collected, after at most that many objects (a few tens of MB)
GC_THRESHOLD = 200_000


def _tune_gc() -> None:
    """The process is the CLI's: what the imports built lives until exit, so it leaves the collector's view
    (``gc.freeze``), and the collector runs less often (:data:`GC_THRESHOLD`). Cycles are still collected."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


def _name(info: typer.models.CommandInfo | typer.models.TyperInfo) -> str:
    """The name typer gives a mounted command or group (its own, else the function's, dashed)."""
    name = info.name
    if isinstance(name, str) and name:
        return name
    callback = info.callback
    return callback.__name__.lower().replace("_", "-") if callback is not None else ""


@contextlib.contextmanager
def _one_command(argv: list[str]) -> Iterator[None]:
    """While the block runs, ``app`` mounts only the command ``argv`` names first (module docstring); any other
    ``argv`` leaves it whole."""
    first = argv[1] if len(argv) > 1 else ""
    commands, groups = app.registered_commands, app.registered_groups
    keep = ([c for c in commands if _name(c) == first], [g for g in groups if _name(g) == first])
    if not any(keep):  # no name first (an option, nothing) or not a command's
        yield
        return
    app.registered_commands, app.registered_groups = keep
    try:
        yield
    finally:
        app.registered_commands, app.registered_groups = commands, groups


def main() -> None:
    """Console-script entry point."""
    _tune_gc()
    try:
        with _one_command(sys.argv):
            app()
    except BrokenPipeError:  # e.g. `dbcost fetch ... | head`
        sys.stderr.close()
        sys.exit(EXIT_OK)
