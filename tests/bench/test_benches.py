"""The rate and estimate benchmarks run end to end in their quick modes (they measure nothing here: the lead runs
them in full on a quiet machine); each prints one JSON document with the fields the issue asks for."""

from __future__ import annotations

import json

import pytest

from bench import bench_estimate, bench_rate


def test_rate_bench_runs_one_short_cell(capsys: pytest.CaptureFixture[str]) -> None:
    """One cell (20 req/s allowed, burst 5, 50 ms), about 30 requests: achieved/allowed and throttled share."""
    assert bench_rate.main(["--cells", "20:5:50", "--seconds", "1", "--json"]) == 0
    [cell] = json.loads(capsys.readouterr().out)["cells"]
    assert cell["status"] == "done" and cell["billed_requests"] >= 30
    assert cell["achieved_share"] > 0 and 0 <= cell["throttled_share"] <= 1 and cell["over_min"] >= 1


def test_estimate_bench_runs_its_quick_case(capsys: pytest.CaptureFixture[str]) -> None:
    """The quick case: the plain and the probed estimate against the runs, and probe + run against the fewest."""
    assert bench_estimate.main(["--quick", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)["cases"]
    assert case["probe_requests"] <= max(2, 0.02 * case["probed_run"])
    assert abs(case["probe_error"]) <= 0.10 and case["pages_reused"] > 0
