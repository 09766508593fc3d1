"""`dbcost demo` on the 1st of a month (issue 14's defects): it backfills the three months it attributes, its
two quarantine counts are explained and exact, the example policy's comments say the statuses it shows, and
the fetch it suggests has a window Cost Explorer accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dbcost.quota import example_policy_text
from tests.conftest import run_cli_async

#: the comment lines of the example policy that say what the demo shows, by kind of day
_PROMISE = re.compile(r"^#\s+(late in a month|on the 1st)[^:]*:\s*(.+)$", re.MULTILINE)


def promised_statuses(kind: str) -> dict[str, str]:
    """pool -> status the example policy's comments promise for ``kind`` ("late in a month", "on the 1st")."""
    [line] = [text for k, text in _PROMISE.findall(example_policy_text()) if k == kind]
    out: dict[str, str] = {}
    for part in line.split(";"):
        status, _, pools = part.strip().partition(" ")
        out.update({p.strip(): status for p in pools.split(",")})
    return out


def shown_statuses(demo_out: str) -> dict[str, str]:
    """pool -> status of every pool that is not OK, from the demo's `quota` line."""
    [line] = [x for x in demo_out.splitlines() if x.strip().startswith("quota ")]
    listed = line.split(": ", 1)[1]
    return {} if listed == "all OK" else dict(p.split(" ") for p in listed.split(", "))


async def test_demo_on_the_first_backfills_three_months_and_explains_its_counts(tmp_path: Path) -> None:
    """--today 2026-12-01: the backfill covers 2026-09..2026-11 (the three attributed months, as the README
    says), both quarantine counts are named with their scope and equal the groups served malformed, the
    closed month's statuses are the ones the policy promises, and the suggested fetch window is not empty."""
    code, out, err = await run_cli_async("demo", "--dir", str(tmp_path / "demo"), "--today", "2026-12-01",
                                         timeout=120)
    assert code == 0, err + out
    assert "backfill      2026-09-01..2026-12-01 (3 months, DAILY)" in out
    assert "attribute: 2026-09 to 2026-11" in err
    backfilled = re.search(r"(\d+) quarantined \(== (\d+) malformed groups served to this query\)", out)
    report = re.search(r"(\d+) quarantined in 2026-11's attribution datasets \(== (\d+) malformed groups served "
                       r"to those queries; the backfill's (\d+) are its own query's, over 3 months\)", out)
    assert backfilled and report, out
    assert backfilled[1] == backfilled[2] == report[3] and report[1] == report[2]
    code, ds_out, err = await run_cli_async("datasets", "--db", str(tmp_path / "demo" / "dbcost.duckdb"),
                                            "--format", "json")
    assert code == 0, err
    [demo] = [d for d in json.loads(ds_out) if d["label"] and d["label"].startswith("demo:")]
    assert (demo["start"][:10], demo["end"][:10]) == ("2026-09-01", "2026-12-01")
    # the report's count is the quarantine the report itself shows for the month
    code, rep, err = await run_cli_async("report", "--db", str(tmp_path / "demo" / "dbcost.duckdb"), "--month",
                                         "2026-11", "--format", "json", "--today", "2026-12-01")
    assert code == 0, err
    assert json.loads(rep)["quarantined"]["total"] == int(report[1])
    assert shown_statuses(out) == promised_statuses("on the 1st")
    start, end = re.search(r"--start (\S+) --end (\S+) --group-by SERVICE", out).groups()  # type: ignore[union-attr]
    assert (start, end) == ("2026-11-01", "2026-12-01")
