"""The report package's face: the names importers use, and rich loaded only with the table renderer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dbcost.report

PACKAGE = Path(dbcost.report.__file__).parent


def test_facade_names() -> None:
    """Every name of dbcost.report's __all__ resolves, render_table included (loaded on first use)."""
    for name in dbcost.report.__all__:
        assert getattr(dbcost.report, name) is not None, name
    from dbcost.report.table import render_table

    assert dbcost.report.render_table is render_table
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = dbcost.report.nothing


def test_importing_the_report_does_not_load_rich() -> None:
    """`import dbcost.report` leaves rich unloaded; asking for render_table loads it."""
    code = ("import sys, dbcost.report; assert 'rich' not in sys.modules, 'rich loaded on import'; "
            "dbcost.report.render_table; assert 'rich' in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_only_the_table_module_imports_rich() -> None:
    """Of the report's modules only table.py imports rich (at any depth of the module)."""
    for path in sorted(PACKAGE.glob("*.py")):
        nodes = list(ast.walk(ast.parse(path.read_text())))
        names = [a.name for n in nodes if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)]
        uses_rich = any(n.split(".")[0] == "rich" for n in names)
        assert uses_rich == (path.name == "table.py"), path.name
