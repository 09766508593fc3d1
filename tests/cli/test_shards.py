"""Shards from the orchestrator's environment: ``--shard K/N``, ``DBCOST_SHARD=K/N`` and ``--shard-index-env NAME
--shard-count N`` (a 0-based index, as a Kubernetes indexed Job's ``JOB_COMPLETION_INDEX``) plan the same share;
a bad combination is exit 2 with one line and no store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli_async

PLAN = ["backfill", "--start", "2026-01-01", "--end", "2026-11-01", "--endpoint-url", "http://127.0.0.1:9",
        "--today", "2026-11-28", "--dry-run", "--json"]


async def plan(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    code, out, err = await run_cli_async(*PLAN, *args, env=env)
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


async def test_the_three_ways_to_name_a_shard_plan_the_same_units() -> None:
    """--shard 2/3, DBCOST_SHARD=2/3 and --shard-index-env JOB_COMPLETION_INDEX=1 --shard-count 3 are one plan."""
    flag = await plan("--shard", "2/3")
    assert flag["shard"] == "2/3" and len(flag["units"]) == 3  # type: ignore[arg-type]
    assert await plan(env={"DBCOST_SHARD": "2/3"}) == flag
    assert await plan("--shard-index-env", "JOB_COMPLETION_INDEX", "--shard-count", "3",
                      env={"JOB_COMPLETION_INDEX": "1"}) == flag
    assert (await plan("--shard", "1/3", env={"DBCOST_SHARD": "2/3"}))["shard"] == "1/3"  # the flag wins


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--shard-index-env", "JOB_COMPLETION_INDEX"], {"JOB_COMPLETION_INDEX": "0"},
     "--shard-index-env and --shard-count: give both"),
    (["--shard-count", "3"], {}, "--shard-index-env and --shard-count: give both"),
    (["--shard-index-env", "IDX", "--shard-count", "3"], {}, "--shard-index-env IDX: the environment variable is not set"),
    (["--shard-index-env", "IDX", "--shard-count", "3"], {"IDX": "3"}, "index 3 is not between 0 and --shard-count - 1 (2)"),
    (["--shard-index-env", "IDX", "--shard-count", "3"], {"IDX": "one"}, "IDX: 'one' is not a 0-based index"),
    (["--shard-index-env", "IDX", "--shard-count", "3", "--shard", "1/3"], {"IDX": "0"}, "give one of them, not both"),
    ([], {"DBCOST_SHARD": "4/3"}, "--shard: K must be between 1 and N, got '4/3' (from DBCOST_SHARD)"),
])
async def test_a_bad_shard_is_exit_2_with_one_line(args: list[str], env: dict[str, str], message: str,
                                                   tmp_path: Path) -> None:
    """Each bad shard option or variable: exit 2, one stderr line saying what is wrong, no store file."""
    db = tmp_path / "s.duckdb"
    code, out, err = await run_cli_async("backfill", "--start", "2026-10-01", "--endpoint-url", "http://127.0.0.1:9",
                                         "--db", str(db), *args, env=env)
    assert code == 2 and not out
    [line] = err.strip().splitlines()
    assert message in line
    assert not db.exists()
