"""Every command's ``--help`` at 80 columns, through the app's entry point with a shell's argv:
nothing cut with ``…``, no Python type for a placeholder, the choices of a choice option listed, no
Markdown or Rich markup eaten, and the root's global options on every command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import typer.main

from dbcost.cli import app

#: how typer shows a Python type when an option has no metavar of its own
_PYTHON_TYPE = re.compile(r"<(str|int|float|bool|list\[|path|text|float range|int range)")

#: options whose choices the help must list (in the placeholder column, or the help text when long)
_CHOICES = {
    "--log-level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "--log-format": ("text", "json"),
    "--granularity": ("DAILY", "MONTHLY", "HOURLY"),
    "--window": ("auto", "month", "semimonth", "week", "day"),
    "--fail-on": ("warn", "breach"),
    "--format": ("json",),
}
_FORMATS = {"fetch": ("jsonl", "csv", "table"), "attribute": ("table", "json", "csv"),
            "report": ("table", "json", "csv", "html"), "quota check": ("table", "json", "csv"),
            "advise": ("table", "json", "csv"), "datasets": ("table", "json", "csv"),
            "backfill": ("table", "json", "csv"), "sync": ("table", "json", "csv"),
            "export": ("jsonl", "csv", "parquet", "focus"), "config show": ("table", "json", "csv")}


def _listed(text: str, choices: tuple[str, ...]) -> bool:
    """``choices`` appear in this order as one list, `a|b|c` or `a, b, c` (a line break may fall between)."""
    flat = re.sub(r"[\s│]+", " ", text)
    sep = r"(\||,\s?)\s?"
    return re.search(sep.join(re.escape(c) for c in choices), flat) is not None or len(choices) == 1


def _command_paths() -> list[list[str]]:
    """Every command and group below the root, as the words that name it."""
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


#: run in one interpreter (one import of dbcost instead of one per command): the app's own entry point,
#: with the argv a shell passes, each help captured from stdout
_WALK = """
import contextlib, io, json, sys
from dbcost.cli import app
out = {}
for path in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            app([*path, "--help"], prog_name="dbcost")
        except SystemExit as exc:
            assert exc.code in (0, None), (path, exc.code)
    out[" ".join(path) or "(root)"] = buf.getvalue()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "80", "LINES": "40", "TERM": "dumb"}
    env.pop("TERMINAL_WIDTH", None)
    done = subprocess.run([sys.executable, "-c", _WALK, json.dumps(_command_paths())], env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    got: dict[str, str] = json.loads(done.stdout)
    return got


def test_every_help_fits_80_columns_without_cuts(helps: dict[str, str]) -> None:
    """No line is wider than 80 columns and none is cut with an ellipsis, on any command."""
    assert len(helps) >= 15, sorted(helps)
    for name, text in helps.items():
        for line in text.splitlines():
            assert len(line) <= 80, (name, line)
            assert "…" not in line, (name, line)


def test_placeholders_mean_something(helps: dict[str, str]) -> None:
    """No `<str>`, `<list[str]>`, `<float range>` or `<bool>`: placeholders are DATE, MONTH, N, FILE, URL, ..."""
    for name, text in helps.items():
        assert not _PYTHON_TYPE.search(text), (name, _PYTHON_TYPE.search(text))
    backfill = helps["backfill"]
    for option, metavar in (("--start", "DATE"), ("--db", "FILE"), ("--endpoint-url", "URL"),
                            ("--max-requests", "N"), ("--output", "PATH|-")):
        assert re.search(rf"{re.escape(option)}\s+(-\w\s+)?{re.escape(metavar)}(?!\S)", backfill), (option, backfill)
    assert re.search(r"--month\s+MONTH", helps["attribute"])


def test_choices_are_listed(helps: dict[str, str]) -> None:
    """--format, --granularity, --log-level, --log-format, --window and --fail-on show their choices."""
    for name, text in helps.items():
        for option, choices in _CHOICES.items():
            if re.search(rf"{option}\s", text):
                assert _listed(text, choices), (name, option)
    for name, choices in _FORMATS.items():
        assert _listed(helps[name], choices), name


def test_no_markup_is_eaten(helps: dict[str, str]) -> None:
    """`[[pool]]` in quota check's --policy help is printed as written (Rich markup used to eat it)."""
    assert "[[pool]]" in helps["quota check"]


def test_global_options_are_on_every_command_and_completion_is_on(helps: dict[str, str]) -> None:
    """--log-level and --log-format are listed on every command (accepted after it); the root offers
    --version and shell completion."""
    for name, text in helps.items():
        assert "--log-level" in text and "--log-format" in text, name
    root = helps["(root)"]
    for option in ("--version", "--install-completion", "--show-completion"):
        assert option in root


def test_shell_completion_completes_options_and_choices() -> None:
    """The completion script's protocol (what `--install-completion` wires into bash) completes an option
    name and the choices of --format."""
    run_as_dbcost = "import sys; sys.argv[0] = 'dbcost'; from dbcost.cli import main; main()"

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_DBCOST_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        done = subprocess.run([sys.executable, "-c", run_as_dbcost], env=env, capture_output=True, text=True,
                              timeout=60, check=True)
        return done.stdout.split()

    assert complete("dbcost attribute --for", 2) == ["--format"]
    assert complete("dbcost attribute --format ", 3) == ["table", "json", "csv"]


def test_advise_non_prod_default_is_the_advisors() -> None:
    """``advise --non-prod``'s default, written in the CLI so that mounting it imports no advice rules, is the
    advisor's own :data:`dbcost.advice.DEFAULT_NON_PROD`."""
    import dbcost.advice
    import dbcost.cli.advise

    assert ",".join(dbcost.advice.DEFAULT_NON_PROD) == dbcost.cli.advise.NON_PROD_DEFAULT


_ALONE = """
import contextlib, io, json, sys
from dbcost.cli import _one_command, app
out = {}
for path in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), _one_command(["dbcost", *path]):
        try:
            app([*path, "--help"], prog_name="dbcost")
        except SystemExit as exc:
            assert exc.code in (0, None), (path, exc.code)
    out[" ".join(path)] = buf.getvalue()
print(json.dumps(out))
"""


def test_a_command_built_alone_helps_as_in_the_whole_tree(helps: dict[str, str]) -> None:
    """``dbcost <command>`` builds only that command's tree: its help (and its subcommands') is the whole
    tree's, word for word, global options included."""
    env = {**os.environ, "COLUMNS": "80", "LINES": "40", "TERM": "dumb"}
    env.pop("TERMINAL_WIDTH", None)
    paths = [p for p in _command_paths() if p]
    done = subprocess.run([sys.executable, "-c", _ALONE, json.dumps(paths)], env=env, check=True,
                          capture_output=True, text=True, timeout=120)
    alone: dict[str, str] = json.loads(done.stdout)
    assert alone.keys() == {" ".join(p) for p in paths}
    for name, text in alone.items():
        assert text == helps[name], name


@pytest.mark.parametrize(("argv", "built"), [
    (["dbcost", "backfill", "--start", "2026-01-01"], {"backfill"}),
    (["dbcost", "quota", "check"], {"quota"}),
    (["dbcost"], None), (["dbcost", "--log-level", "INFO", "backfill"], None), (["dbcost", "backfil"], None),
    (["dbcost", "--help"], None),
])
def test_only_the_command_named_first_is_built(argv: list[str], built: set[str] | None) -> None:
    """The command named first is the only one built (and the tree is whole again after); no name first, a root
    option first or a misspelt name (whose suggestion needs every name) builds the whole tree."""
    from dbcost.cli import _one_command

    whole = set(getattr(typer.main.get_command(app), "commands", {}))
    with _one_command(argv):
        names = set(getattr(typer.main.get_command(app), "commands", {}))
    assert names == (built if built is not None else whole)
    assert set(getattr(typer.main.get_command(app), "commands", {})) == whole and len(whole) == 13
