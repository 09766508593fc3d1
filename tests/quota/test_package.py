"""The quota package's face: every public name importable from dbcost.quota, each module its own name."""

from __future__ import annotations

import types

import dbcost.quota
import dbcost.quota.evaluation
import dbcost.quota.gate
import dbcost.quota.policy
import dbcost.quota.table

#: The public names of the single-module dbcost.quota before it became a package.
PUBLIC = ("BUDGET_METRICS", "CAP_CATEGORIES", "EXIT_BREACH", "EXIT_WARN", "PCT_PLACES", "RATE_PLACES", "STATUS_RANK",
          "TABLE_HEADER", "CategoryEvaluation", "Policy", "PoolEvaluation", "PoolPolicy", "QuotaReport", "Status",
          "StatusChange", "evaluate", "example_policy_text", "exit_code", "format_usd", "load_policy", "render_table",
          "status_changes", "table_rows")


def test_every_public_name_is_importable_from_the_package() -> None:
    """dbcost.quota still exports every name it had as one module, and each comes from one submodule."""
    assert sorted(dbcost.quota.__all__) == sorted(PUBLIC)
    modules = (dbcost.quota.evaluation, dbcost.quota.gate, dbcost.quota.policy, dbcost.quota.table)
    for name in PUBLIC:
        value = getattr(dbcost.quota, name)
        assert any(getattr(m, name, None) is value for m in modules), name


def test_submodules_are_not_shadowed_by_functions() -> None:
    """No submodule shares a name with a function of the package (so `import dbcost.quota.X as m` is a module)."""
    for name in ("evaluation", "gate", "policy", "table"):
        assert isinstance(getattr(dbcost.quota, name), types.ModuleType), name
