"""Configuration through the CLI: dbcost.toml, [tool.dbcost] and DBCOST_* variables set the options'
defaults with the precedence flag > env > file > default; `dbcost config show` prints each value and where it
came from; an unknown key or a bad value is exit 2 and one line naming it and the file or variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dbcost.cli.app import _default_map
from dbcost.config import CONFIG_KEYS


def dbcost(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m dbcost ARGS`` run in ``cwd`` (where the configuration file is looked for)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DBCOST_")}
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "dbcost", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str) -> str:
    [line] = err.strip().splitlines()
    return line


def test_store_path_precedence_is_flag_env_file_default(tmp_path: Path) -> None:
    """--db is the built-in default, else dbcost.toml's, else DBCOST_DB's, else the flag's: each level beats
    the one below it (the store each run names is the one it would open)."""
    assert "--db dbcost.duckdb: no such store" in one_line(dbcost(tmp_path, "datasets")[2])
    (tmp_path / "dbcost.toml").write_text('db = "from-file.duckdb"\n', encoding="utf-8")
    assert "--db from-file.duckdb: no such store" in one_line(dbcost(tmp_path, "datasets")[2])
    env = {"DBCOST_DB": "from-env.duckdb"}
    assert "--db from-env.duckdb: no such store" in one_line(dbcost(tmp_path, "datasets", env=env)[2])
    code, _, err = dbcost(tmp_path, "datasets", "--db", "from-flag.duckdb", env=env)
    assert code == 2 and "--db from-flag.duckdb: no such store" in one_line(err)


def test_config_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    """`config show --format json` lists every key with its value and source: the file's, the variable's
    (which wins over the file) and the defaults; the table says the same."""
    (tmp_path / "dbcost.toml").write_text('db = "f.duckdb"\nmax_rps = 2\nteam_tag = "owner"\n', encoding="utf-8")
    code, out, err = dbcost(tmp_path, "config", "show", "--format", "json", env={"DBCOST_MAX_RPS": "3.5"})
    assert code == 0, err
    data = json.loads(out)
    assert data["file"] == str(tmp_path / "dbcost.toml")
    got = {v["key"]: (v["value"], v["source"], v["from"]) for v in data["values"]}
    assert list(got) == [k.name for k in CONFIG_KEYS]
    assert got["db"] == ("f.duckdb", "file", str(tmp_path / "dbcost.toml"))
    assert got["max_rps"] == (3.5, "env", "DBCOST_MAX_RPS")
    assert got["team_tag"] == ("owner", "file", str(tmp_path / "dbcost.toml"))
    assert got["cluster_tag"] == ("db-cluster", "default", None)
    assert got["max_concurrency"] == (16, "default", None)
    code, out, _ = dbcost(tmp_path, "config", "show")
    assert code == 0 and "f.duckdb" in out and "default" in out and "DBCOST_MAX_RPS" in out


def test_pyproject_table_and_an_explicit_config_file(tmp_path: Path) -> None:
    """[tool.dbcost] of pyproject.toml is read when there is no dbcost.toml; --config FILE replaces the search,
    and a relative path in it is relative to the file's directory."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.dbcost]\ndb = "py.duckdb"\n',
                                             encoding="utf-8")
    assert "--db py.duckdb: no such store" in one_line(dbcost(tmp_path, "datasets")[2])
    other = tmp_path / "etc"
    other.mkdir()
    (other / "costs.toml").write_text('db = "s.duckdb"\n', encoding="utf-8")
    code, _, err = dbcost(tmp_path, "--config", str(other / "costs.toml"), "datasets")
    assert code == 2 and f"--db {other / 's.duckdb'}: no such store" in one_line(err)
    # a pyproject.toml that is not about dbcost is not ours, even when it is not TOML
    (tmp_path / "pyproject.toml").write_text("[project\n", encoding="utf-8")
    assert "--db dbcost.duckdb: no such store" in one_line(dbcost(tmp_path, "datasets")[2])


def test_configured_defaults_reach_grouped_commands(tmp_path: Path) -> None:
    """A configured policy is `quota check`'s --policy (a required option, satisfied by the file)."""
    (tmp_path / "dbcost.toml").write_text('policy = "budgets.toml"\n', encoding="utf-8")
    code, _, err = dbcost(tmp_path, "quota", "check", "--month", "2026-11")
    assert code == 2 and "policy budgets.toml: cannot read" in one_line(err)


def test_a_targets_flag_replaces_a_configured_profile(tmp_path: Path) -> None:
    """profile in the file and --targets on the command line: the flag describes the targets (no conflict);
    both from the command line is still refused."""
    (tmp_path / "dbcost.toml").write_text('profile = "billing"\n', encoding="utf-8")
    (tmp_path / "t.toml").write_text('[[target]]\nname = "payer-a"\nprofile = "a"\n', encoding="utf-8")
    plan = ("backfill", "--start", "2026-10-01", "--end", "2026-10-02", "--dry-run", "--today", "2026-11-28",
            "--json")
    code, out, err = dbcost(tmp_path, *plan, "--targets", "t.toml")
    assert code == 0, err
    assert "payer-a" in out
    code, _, err = dbcost(tmp_path, *plan, "--targets", "t.toml", "--profile", "other")
    assert code == 2 and "--targets: give profiles/endpoints in the targets file" in one_line(err)


@pytest.mark.parametrize(("text", "env", "message"), [
    ('max-rps = 2\n', {}, "dbcost.toml: unknown key 'max-rps' (known: db, "),
    ('max_rps = "fast"\n', {}, "dbcost.toml: max_rps: expected a number, got 'fast'"),
    ('max_concurrency = 0\n', {}, "dbcost.toml: max_concurrency: must be at least 1, got 0"),
    ('endpoint_url = "ftp://x"\n', {}, "dbcost.toml: --endpoint-url ftp://x: must be an http:// or https:// URL"),
    ('db = [\n', {}, "dbcost.toml: not valid TOML"),
    ('', {"DBCOST_MAX_CONCURRENCY": "many"}, "DBCOST_MAX_CONCURRENCY: max_concurrency: expected a whole number"),
    ('', {"DBCOST_CONFIG": "absent.toml"}, "--config absent.toml: cannot read"),
])
def test_bad_configuration_is_exit_2_and_one_line(tmp_path: Path, text: str, env: dict[str, str],
                                                  message: str) -> None:
    """An unknown key, a value of the wrong type or range, a file that is not TOML or cannot be read: exit 2,
    one line naming the key and the file or variable, whatever the command."""
    if text:
        (tmp_path / "dbcost.toml").write_text(text, encoding="utf-8")
    code, out, err = dbcost(tmp_path, "datasets", env=env)
    assert code == 2 and not out
    assert message in one_line(err)


def test_the_default_map_covers_every_option_of_a_key_but_the_emulators() -> None:
    """Every command option named as a configuration key gets the configured value; the emulator's own
    --max-rps (the server's limit, not a client rate) does not."""
    from dbcost.cli import app

    root = typer.main.get_command(app)
    dm = _default_map(root, {"max_rps": 2.0, "db": "x.duckdb", "policy": "p.toml"})
    assert dm["fetch"]["max_rps"] == dm["backfill"]["max_rps"] == dm["attribute"]["max_rps"] == 2.0
    assert dm["quota"]["check"]["policy"] == dm["report"]["policy"] == "p.toml"
    assert dm["export"]["db"] == dm["sync"]["db"] == "x.duckdb"
    assert "emulator" not in dm and "db" not in dm["fetch"]
