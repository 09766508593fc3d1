"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml speak the metrics file dbcost really writes.

The metric and label names come from a real ``--metrics-file`` (a backfill against the emulator, parsed with
prometheus_client as Prometheus would), not from a list: every ``dbcost_*`` name in the dashboard's queries,
legends and variables and in the alert rules must be a metric of that file, and every label they select, group
by or print must be one of its labels. The rules file has the rule-file structure (groups of named rules with
an ``expr``); ``promtool check rules`` and ``promtool test rules docs/prometheus-alerts.test.yml`` run when
promtool is installed (``.ci/setup`` takes it out of Debian's prometheus package into ``.venv/bin``) and the
test says it skipped them otherwise.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_METRIC = re.compile(r"\bdbcost_[a-z_]+\b")
#: PromQL words that may stand before "(" or inside "by (...)" and are not labels
_PROMQL_FUNCS = frozenset({"time", "clamp_min", "absent", "sum", "max", "min", "avg", "rate", "label_values"})


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Metric name -> its label names, from the file a real backfill wrote (module-scoped: it runs before the
    per-test fake-credential fixture, so it passes placeholder keys itself)."""
    tmp = tmp_path_factory.mktemp("metrics")
    path = tmp / "dbcost.prom"

    async def backfill() -> tuple[int, str, str]:
        async with Emulator(EmulatorConfig(today=TODAY, clusters=12, malformed_rate=0.05)) as emu:
            return await run_cli_async(
                "backfill", "--start", "2026-10-01", "--end", "2026-11-01", "--granularity", "MONTHLY",
                "--group-by", "SERVICE", "--group-by", "TAG:db-cluster", "--endpoint-url", emu.url,
                "--db", str(tmp / "s.duckdb"), "--metrics-file", str(path), "--today", TODAY_S,
                env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_CONFIG_FILE": str(tmp / "none"),
                     "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none")})

    code, _, err = asyncio.run(backfill())
    assert code == 0, err
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        labels[family.name] = set().union(*(s.labels for s in family.samples)) if family.samples else set()
    assert {"dbcost_run_ok", "dbcost_requests", "dbcost_last_success_timestamp_seconds"} <= set(labels)
    return labels


def _check_expr(expr: str, metrics: dict[str, set[str]], where: str, legend: str = "") -> None:
    """Every metric of ``expr`` is in the file; every label it selects, groups by or prints is one of them."""
    names = set(_METRIC.findall(expr))
    assert names, f"{where}: {expr!r} names no dbcost metric"
    unknown = names - set(metrics)
    assert not unknown, f"{where}: {sorted(unknown)} are not in the metrics file ({sorted(metrics)})"
    available = set().union(*(metrics[n] for n in names))
    used = {m for sel in re.findall(r"\{([^}]*)\}", expr) for m in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel)}
    used |= {w for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for w in re.findall(r"\w+", group)}
    used |= set(re.findall(r"label_values\(\s*\w+\s*,\s*(\w+)\s*\)", expr))
    used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    missing = used - available - _PROMQL_FUNCS
    assert not missing, f"{where}: labels {sorted(missing)} are not on {sorted(names)} (they have {sorted(available)})"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return data


def test_dashboard_queries_name_metrics_and_labels_the_file_has(metrics: dict[str, set[str]]) -> None:
    """Every panel query, legend and template variable of the dashboard uses the file's names."""
    dash = _dashboard()
    panels = dash["panels"]
    assert panels and len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p["targets"], p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        for t in p["targets"]:
            _check_expr(t["expr"], metrics, f"panel {p['title']!r}", t.get("legendFormat", ""))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            _check_expr(var["query"], metrics, f"variable {var['name']!r}")
    # every metric the file has is on the dashboard somewhere
    shown = set(_METRIC.findall(json.dumps(panels)))
    assert shown == set(metrics), f"not on the dashboard: {sorted(set(metrics) - shown)}"


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_alert_rules_have_the_rule_file_structure_and_name_real_metrics(metrics: dict[str, set[str]]) -> None:
    """groups → rules, each an alert with an expr over the file's metrics, a severity and a summary whose
    ``$labels.X`` are labels of those metrics."""
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(set(names)) == len(names)
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in ("info", "warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        printed = " ".join(r["annotations"].values())
        legend = " ".join("{{" + m + "}}" for m in re.findall(r"\$labels\.(\w+)", printed))
        _check_expr(r["expr"], metrics, f"alert {r['alert']}", legend)
    assert {"DbcostRunFailed", "DbcostDataStale"} <= set(names)


def _promtool() -> str | None:
    for candidate in (shutil.which("promtool"), Path(sys.prefix) / "bin" / "promtool", ROOT / ".venv" / "bin" / "promtool"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


@pytest.mark.parametrize("check", ["check", "test"])
def test_promtool_accepts_the_rules_and_their_unit_tests(check: str) -> None:
    """``promtool check rules`` passes, and ``promtool test rules`` shows each alert firing on its series and
    quiet on healthy ones."""
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/setup puts Debian's into .venv/bin): only the YAML checks ran")
    target = "prometheus-alerts.yml" if check == "check" else "prometheus-alerts.test.yml"
    done = subprocess.run([promtool, check, "rules", target], cwd=DOCS,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
