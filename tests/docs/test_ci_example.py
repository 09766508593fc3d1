"""docs/ci/quota-gate.yml is a valid GitHub Actions workflow whose dbcost command lines are real ones.

Valid: check-jsonschema validates it against the GitHub workflow schema it vendors (SchemaStore's). Real: each
``run:`` line is split the way a shell would (quotes kept, continuation lines joined, commands separated at
``;``, ``&&``, ``||``, ``|``; redirections dropped), shell variables are replaced by what they hold, and each
``dbcost ...`` command is resolved against the typer app itself: the command (and subcommand) must exist, and
the command's own parser (typer's click) must accept the rest without running it: known options, values of
the right type, choices, required options. The store is cached: restored before the first dbcost command and
saved after the gate even when it failed, under the path the commands use.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from dbcost.cli import app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "ci" / "quota-gate.yml"
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "\n"})


def _steps() -> list[dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as argument lists (redirections and their targets dropped)."""
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        commands.append([])
        redirect = False
        for token in lexer:
            if set(token) <= {";", "&", "|"}:
                commands.append([])
            elif set(token) <= {">", "<"}:
                redirect = True
            elif redirect:
                redirect = False
            else:
                commands[-1].append(token)
    return [c for c in commands if c]


def _check_line(line: str, env: dict[str, str]) -> str:
    """Resolve and parse one ``dbcost ...`` command line; the command's path (``quota check``)."""
    command, path, rest = _resolve(_shell_values(shlex.split(line)[1:], env))
    assert not _is_group(command), f"dbcost {' '.join(path)}: a group, not a command"
    _check_options(command, path, rest)
    return " ".join(path)


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer builds on its own copy of click: duck-typed, not isinstance


def _resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The click command ``dbcost ARGS`` runs, the names leading to it, and the remaining arguments."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while _is_group(command) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"dbcost {' '.join([*path, rest[0]])}: no such command"
        path.append(rest.pop(0))
        command = sub
    return command, path, rest


def _check_options(command: Any, path: list[str], rest: list[str]) -> None:
    """Parse ``rest`` with the command's own parser (typer's click: types, choices, required options, unknown
    options), without invoking it; a refusal is an AssertionError naming the line."""
    try:
        command.make_context(f"dbcost {' '.join(path)}", list(rest))
    except Exception as exc:  # typer's own copy of click's UsageError/BadParameter/NoSuchOption
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise AssertionError(f"dbcost {' '.join(path)}: {message}") from None


def _shell_values(words: list[str], env: dict[str, str]) -> list[str]:
    """Shell variables replaced by what they hold when the workflow runs (``$month``: a month)."""
    values = {**env, "month": "2026-11"}
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], w) for w in words]


def test_the_workflow_is_valid_for_github_actions() -> None:
    """check-jsonschema accepts the workflow under the GitHub workflow schema."""
    exe = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dbcost_command_line_is_a_real_command_with_real_options() -> None:
    """Each ``dbcost`` line of a ``run:`` resolves to a command of the app and uses only its options."""
    env = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["quota"]["env"]
    seen = [_check_line(shlex.join(words), env) for step in _steps() for words in _commands(step.get("run", ""))
            if words[0] == "dbcost"]
    assert seen == ["attribute", "quota check", "report"]


@pytest.mark.parametrize(("line", "fragment"), [
    ("dbcost quota chek --db x", "no such command"),
    ("dbcost attribute --month 2026-11 --dbb x", "No such option: --dbb"),
    ("dbcost attribute --month 2026-11 --max-age-hours lots", "Invalid value for '--max-age-hours'"),
    ("dbcost quota", "a group, not a command"),
])
def test_the_checker_refuses_what_is_not_a_command(line: str, fragment: str) -> None:
    """The check above is not vacuous: an unknown command or option, a value of the wrong type, a group."""
    with pytest.raises(AssertionError, match=fragment):
        _check_line(line, {})


def test_the_store_is_cached_around_the_gate() -> None:
    """The store path the commands use is restored first and saved last, also after a failed gate."""
    steps = _steps()
    uses = [s.get("uses", "") for s in steps]
    restore = next(i for i, u in enumerate(uses) if u.startswith("actions/cache/restore@"))
    save = next(i for i, u in enumerate(uses) if u.startswith("actions/cache/save@"))
    runs = [i for i, s in enumerate(steps) if "dbcost " in s.get("run", "") and "pip install" not in s["run"]]
    assert restore < min(runs) and save > max(runs)
    assert steps[save].get("if") == "always()"
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    db = doc["jobs"]["quota"]["env"]["DB"]
    assert steps[restore]["with"]["path"] == steps[save]["with"]["path"] == db
    assert steps[save]["with"]["key"].startswith(steps[restore]["with"]["restore-keys"])
    assert any("--fail-on" in s.get("run", "") for s in steps)
