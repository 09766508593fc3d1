"""The ``dbcost`` command line (typer + rich). Reaches the library through the public ``dbcost`` package only.

``app`` (global options, exit codes, the async runner) lives in :mod:`dbcost.cli.app`; shared options in
:mod:`~dbcost.cli.options`; what is drawn in :mod:`~dbcost.cli.views`; each command group in its own module.
The command modules declare their commands and this module mounts them, in one list, so the order of
``dbcost --help`` is written down here rather than left to the order of imports.

Every command is mounted on every start, so mounting is light: a command module imports its use-case
(``dbcost.jobs.*``), rich and whatever else only its work needs inside the command function, and its
signature's defaults come from :mod:`dbcost.defaults`; ``dbcost --version`` imports no use-case, no pydantic
and no rich, and ``dbcost backfill`` none of the other commands' libraries (``tests/test_architecture.py``).
"""

from __future__ import annotations

import gc
import sys

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


def main() -> None:
    """Console-script entry point."""
    _tune_gc()
    try:
        app()
    except BrokenPipeError:  # e.g. `dbcost fetch ... | head`
        sys.stderr.close()
        sys.exit(EXIT_OK)
