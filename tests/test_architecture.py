"""The layer rules of ARCHITECTURE.md, enforced: a module imports only from lower layers (or its own
sub-package); only transport/aws.py and the sinks import AWS clients; the CLI (every module of cli/) imports
only `dbcost`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dbcost"

#: module (or sub-package) -> layer. Higher layers may import lower ones, never the reverse.
LAYERS: dict[str, int] = {
    "errors": 0, "money": 0, "clock": 0, "logs": 0, "aio": 0,
    "models": 1,
    "plan": 2, "governor": 2, "retry": 2, "breaker": 2, "parse": 2, "attribution": 2,
    "quota": 3, "notify": 4,
    "targets": 2,
    "transport": 3,
    "sinks": 4, "store": 5, "client": 5,
    "api": 6, "metrics": 6,
    "pipeline": 7, "emulator": 7, "report": 7, "jobs": 7,
    "attribute": 8,
    "checks": 9, "demo": 10,
    "cli": 11, "__main__": 12, "__init__": 12,
}
AWS_LIBS = ("aioboto3", "aiobotocore", "botocore", "boto3")


def unit_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    """Every dbcost import in this module points to a lower layer or the module's own sub-package."""
    unit = unit_of(path)
    assert unit in LAYERS, f"{unit} has no layer in the architecture map"
    for name in imports_of(path):
        parts = name.split(".")
        if parts[0] != "dbcost" or len(parts) == 1:
            continue
        target = parts[1]
        if target == unit:
            continue
        assert target in LAYERS, f"{path.name} imports unknown module dbcost.{target}"
        assert LAYERS[target] < LAYERS[unit], (
            f"{path.relative_to(SRC)} (layer {LAYERS[unit]}) imports dbcost.{target} (layer {LAYERS[target]})"
        )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_aws_libraries_only_behind_the_seams(path: Path) -> None:
    """aioboto3/aiobotocore/botocore are imported only in transport/aws.py, sinks and the emulator's tests."""
    rel = str(path.relative_to(SRC))
    allowed = rel == "transport/aws.py" or rel.startswith("sinks/")
    for name in imports_of(path):
        if name.split(".")[0] in AWS_LIBS:
            assert allowed, f"{rel} imports {name}"


CLI_MODULES = sorted((SRC / "cli").glob("*.py"))

#: inside cli/, imports point down this list: the app, then options and views, then the command modules,
#: then the package that mounts them (a command module never imports another one)
CLI_LAYERS: dict[str, int] = {"app": 0, "options": 1, "views": 1, "__init__": 3}


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_cli_imports_only_the_public_package(path: Path) -> None:
    """Every module of cli/ reaches the library through `import dbcost` only (and mounts the emulator's own
    CLI app); inside cli/ it imports only modules below it (app < options, views < commands < __init__)."""
    rel = path.relative_to(SRC)
    level = CLI_LAYERS.get(path.stem, 2)
    for name in imports_of(path):
        if name in ("dbcost", "dbcost.emulator.cli") or not name.startswith("dbcost"):
            continue
        if name == "dbcost.cli":  # `from dbcost.cli import fetch, ...`: the package mounting its commands
            assert path.stem == "__init__", f"{rel} imports {name}"
            continue
        assert name.startswith("dbcost.cli."), f"{rel} imports {name}"
        assert CLI_LAYERS.get(name.removeprefix("dbcost.cli."), 2) < level, f"{rel} imports {name}"


def test_cli_is_a_package_of_several_modules() -> None:
    """The CLI test above reads the cli/ package, so it cannot pass by finding no files."""
    assert {"__init__", "app", "options", "views"} <= {p.stem for p in CLI_MODULES}
    assert not (SRC / "cli.py").exists()
