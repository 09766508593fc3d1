"""The settings tree: one set of defaults that the CLI and a library caller both get, targets resolved per
target, the store's memory cap read from the environment at the edge only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import typer

from dbcost.config import (
    DEFAULT_DB,
    FetchSettings,
    RateSettings,
    Settings,
    StoreSettings,
    TargetConfig,
    load_settings,
)
from dbcost.errors import ConfigError
from dbcost.jobs.attribute import AttributeSpec
from dbcost.models import CostQuery
from dbcost.pipeline import RunSpec


def _cli_defaults() -> dict[str, dict[str, Any]]:
    """command path -> {option name: default} for every command of the real CLI app."""
    from dbcost.cli import app

    out: dict[str, dict[str, Any]] = {}

    def walk(cmd: Any, path: str) -> None:
        # typer's group is not always a click.Group subclass (typer may carry its own click): duck-type it
        out[path] = {p.name: p.default for p in cmd.params if p.name}
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


def test_cli_option_defaults_are_the_settings_defaults() -> None:
    """Every command's --max-rps, --max-concurrency and --db default is the Settings tree's default."""
    rate, seen = RateSettings(), 0
    for path, params in _cli_defaults().items():
        if path.startswith("emulator"):  # the emulator's --max-rps is the server's limit, not a client setting
            continue
        if "max_rps" in params:
            assert params["max_rps"] == rate.max_rps, path
            seen += 1
        if "max_concurrency" in params:
            assert params["max_concurrency"] == rate.max_concurrency, path
        if "db" in params:
            assert Path(params["db"]) == DEFAULT_DB, path
    assert seen >= 4  # fetch, backfill, sync, attribute


def test_the_cli_and_a_library_caller_build_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the CLI builds from its default options equal ``Settings()``, and so do the specs."""
    monkeypatch.delenv("DBCOST_DUCKDB_MEMORY_LIMIT", raising=False)
    backfill = _cli_defaults()["backfill"]
    from_cli = load_settings(db=backfill["db"], max_rps=backfill["max_rps"],
                             max_concurrency=backfill["max_concurrency"])
    assert from_cli == Settings()
    q = CostQuery.build(start="2026-10-01", end="2026-11-01")
    day = dt.date(2026, 12, 1)
    assert RunSpec(query=q, settings=from_cli, today=day) == RunSpec(query=q, today=day)
    assert AttributeSpec(month="2026-11", settings=from_cli, today=day) == AttributeSpec(month="2026-11", today=day)
    # and one target resolves to what a plain FetchSettings() gives a library caller
    assert Settings().fetch_settings() == FetchSettings()


def test_library_defaults_do_not_drift() -> None:
    """RunSpec, AttributeSpec and FetchSettings share the one concurrency default (the CLI's 16, not 8)."""
    q = CostQuery.build(start="2026-10-01", end="2026-11-01")
    assert RunSpec(query=q).max_concurrency == RateSettings().max_concurrency == FetchSettings().max_concurrency == 16
    assert AttributeSpec(month="2026-11").settings.rate == RateSettings()


def test_a_target_of_its_own_rate_overrides_the_run_wide_rate() -> None:
    """A targets-file entry with max_rps/max_concurrency keeps them; the others take the run's."""
    own = TargetConfig(name="own", max_rps=2.0, max_concurrency=3)
    plain = TargetConfig(name="plain", profile="billing")
    s = Settings(targets=(own, plain), rate=RateSettings(max_rps=9.0, max_concurrency=7), credentials=("k", "s"))
    a, b = s.fetch_settings(own), s.fetch_settings(plain)
    assert (a.name, a.max_rps, a.max_concurrency) == ("own", 2.0, 3)
    assert (b.name, b.profile, b.max_rps, b.max_concurrency) == ("plain", "billing", 9.0, 7)
    assert a.credentials == b.credentials == ("k", "s") and "s'" not in repr(s)


def test_settings_refuse_duplicate_or_missing_targets() -> None:
    """Two targets of one name, or none, are one ConfigError line."""
    with pytest.raises(ConfigError, match="duplicate target name"):
        Settings(targets=(TargetConfig(name="a"), TargetConfig(name="a")))
    with pytest.raises(ConfigError, match="at least one target"):
        Settings(targets=())


def test_store_memory_cap_comes_from_the_environment_at_the_edge() -> None:
    """DBCOST_DUCKDB_MEMORY_LIMIT is read by StoreSettings.from_env only, and a bad value names the variable."""
    assert StoreSettings.from_env("x.duckdb", {"DBCOST_DUCKDB_MEMORY_LIMIT": "256MB"}).memory_limit == "256MB"
    assert StoreSettings.from_env("x.duckdb", {}) == StoreSettings(path=Path("x.duckdb"))
    with pytest.raises(ConfigError, match="DBCOST_DUCKDB_MEMORY_LIMIT: expected a size like 256MB, got 'lots'"):
        StoreSettings.from_env("x.duckdb", {"DBCOST_DUCKDB_MEMORY_LIMIT": "lots"})
    with pytest.raises(ConfigError, match="store memory_limit"):
        StoreSettings(memory_limit="1 bucket")


def test_store_threads_come_from_the_environment_at_the_edge() -> None:
    """DBCOST_DUCKDB_THREADS (default 1) is read by StoreSettings.from_env; a value that is not a positive whole
    number names the variable."""
    assert StoreSettings.from_env("x.duckdb", {}).threads == 1
    assert StoreSettings.from_env("x.duckdb", {"DBCOST_DUCKDB_THREADS": "4"}).threads == 4
    for bad in ("0", "two", "-1", ""):
        with pytest.raises(ConfigError, match="DBCOST_DUCKDB_THREADS: expected a whole number"):
            StoreSettings.from_env("x.duckdb", {"DBCOST_DUCKDB_THREADS": bad})
    with pytest.raises(ConfigError, match="store threads"):
        StoreSettings(threads=0)


def test_targets_file_and_command_line_target_are_exclusive(tmp_path: Path) -> None:
    """load_settings takes a targets file or one command-line target, not both."""
    f = tmp_path / "t.toml"
    f.write_text('[[target]]\nname = "payer-a"\nprofile = "a"\n', encoding="utf-8")
    assert [t.name for t in load_settings(targets_file=f).targets] == ["payer-a"]
    with pytest.raises(ConfigError, match="--targets: give profiles/endpoints in the targets file"):
        load_settings(targets_file=f, profile="other")


def test_config_key_defaults_are_the_cli_option_defaults() -> None:
    """Each configuration key's default (what `config show` reports) is the default of every command option it
    sets, so the configuration can never show one default while a command uses another."""
    from dbcost.config import CONFIG_KEYS

    seen: dict[str, int] = {}
    for path, params in _cli_defaults().items():
        if path.startswith("emulator"):
            continue
        for key in CONFIG_KEYS:
            if key.name in params:
                assert params[key.name] == key.default, (path, key.name)
                seen[key.name] = seen.get(key.name, 0) + 1
    assert set(seen) == {k.name for k in CONFIG_KEYS}  # every key sets at least one option


def test_resolve_config_precedence_env_over_file_over_default(tmp_path: Path) -> None:
    """resolve_config: the default, then dbcost.toml (found in the directory), then DBCOST_* over it, each key
    on its own; an empty variable is unset; dbcost.toml is preferred to pyproject's [tool.dbcost]."""
    from dbcost.config import resolve_config

    plain = resolve_config(cwd=tmp_path, environ={})
    assert plain.file is None and plain.overrides() == {}
    (tmp_path / "pyproject.toml").write_text('[tool.dbcost]\nregion = "eu-west-1"\n', encoding="utf-8")
    assert resolve_config(cwd=tmp_path, environ={}).overrides() == {"region": "eu-west-1"}
    (tmp_path / "dbcost.toml").write_text('max_rps = 4\nteam_tag = "owner"\n', encoding="utf-8")
    r = resolve_config(cwd=tmp_path, environ={"DBCOST_MAX_RPS": "2.5", "DBCOST_TEAM_TAG": ""})
    assert r.file == tmp_path / "dbcost.toml"
    assert r.overrides() == {"max_rps": 2.5, "team_tag": "owner"}
    sources = {v.key.name: (v.source, v.origin) for v in r.values}
    assert sources["max_rps"] == ("env", "DBCOST_MAX_RPS")
    assert sources["team_tag"] == ("file", str(tmp_path / "dbcost.toml"))
    assert sources["db"] == ("default", None)


def test_resolve_config_refuses_unknown_keys_naming_key_and_file(tmp_path: Path) -> None:
    """A key the configuration does not know is one ConfigError naming it and the file ([tool.dbcost] too)."""
    from dbcost.config import resolve_config

    (tmp_path / "pyproject.toml").write_text('[tool.dbcost]\nendpoint = "http://x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject.toml \[tool.dbcost\]: unknown key 'endpoint'"):
        resolve_config(cwd=tmp_path, environ={})
