"""The quota gate: --fail-on turns the worst status into exit code 0, 4 (WARN) or 5 (BREACH)."""

from __future__ import annotations

from typing import Literal

import pytest

from dbcost.quota import EXIT_BREACH, EXIT_WARN, exit_code
from tests.quota.helpers import report_with


@pytest.mark.parametrize(
    ("statuses", "fail_on", "code"),
    [
        (("OK", "WARN", "BREACH"), None, 0),
        (("OK",), None, 0),
        (("OK", "OK"), "breach", 0),
        (("OK", "WARN"), "breach", 0),
        (("WARN", "BREACH"), "breach", EXIT_BREACH),
        (("OK", "OK"), "warn", 0),
        (("OK", "WARN"), "warn", EXIT_WARN),
        (("BREACH", "WARN"), "warn", EXIT_BREACH),
        (("BREACH",), "warn", 5),
    ],
)
def test_exit_code_matrix(statuses: tuple[str, ...], fail_on: Literal["warn", "breach"] | None, code: int) -> None:
    """0 without fail_on; breach -> 5 on any BREACH; warn -> 5 on BREACH, 4 on WARN, else 0."""
    assert exit_code(report_with(*statuses), fail_on) == code
