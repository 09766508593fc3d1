"""The rules of docs/ARCHITECTURE.md, enforced: what may never import what, where SQL and foreign libraries may
appear, and what ``import dbcost`` costs. The rules name concepts (foundation, pure core, seams, use-cases,
CLI), not today's file list, so a new module is checked the day it is added."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dbcost"
MODULES = sorted(SRC.rglob("*.py"))

#: the foundation: imports nothing of dbcost but other foundation modules
FOUNDATION = {"errors", "money", "clock", "calendar", "_files", "logs", "aio"}
#: pure logic over values: no I/O layer, no heavy library
PURE = {"models", "plan", "governor", "retry", "breaker", "parse", "attribution", "quota", "advice", "config",
        "defaults", "focus"}
#: the layers that do I/O or orchestrate it; the pure core never imports them
IO_LAYERS = {"transport", "client", "store", "sinks", "notify", "pipeline", "jobs", "report", "cli", "emulator"}
#: libraries that cost import time or belong to one seam
HEAVY = ("aiohttp", "duckdb", "aioboto3", "aiobotocore", "botocore", "boto3", "pyarrow", "nanoarrow", "rich", "typer",
         "aiokafka", "asyncpg")
AWS_LIBS = ("aioboto3", "aiobotocore", "botocore", "boto3")
#: SQL statements, as they start a string literal (``SELECT ...``, ``INSERT INTO``, ...)
_SQL = re.compile(r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|TEMP)|"
                  r"COPY\s*\(|WITH\s+\w+\s+AS\s*\(|ALTER\s+TABLE|DROP\s+TABLE)\b", re.IGNORECASE)


def _rel(path: Path) -> str:
    return str(path.relative_to(SRC))


def _unit(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path, *, top_level_only: bool = False) -> list[str]:
    """Absolute imports of ``path`` (``top_level_only``: those that run at import time, not inside functions
    or ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = _module_level(tree.body) if top_level_only else list(ast.walk(tree))
    out: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.Try):
            out.extend(_module_level(node.body))
            continue
        out.append(node)
    return out


def _dbcost_targets(path: Path) -> list[str]:
    """The first-level dbcost units ``path`` imports (``store``, ``jobs``, ...), its own excluded."""
    own = _unit(path)
    out = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "dbcost" and len(parts) > 1 and parts[1] != own:
            out.append(parts[1])
    return out


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_foundation_imports_only_foundation(path: Path) -> None:
    """errors, money, clock, calendar, _files, logs and aio import no dbcost module outside the foundation."""
    if _unit(path) not in FOUNDATION:
        return
    for target in _dbcost_targets(path):
        assert target in FOUNDATION, f"{_rel(path)} (foundation) imports dbcost.{target}"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_pure_core_does_no_io(path: Path) -> None:
    """The pure core (models, plan, governor, retry, breaker, parse, attribution, quota, advice, config, defaults,
    focus) never imports an I/O layer or a heavy library: it is tested with values, not servers."""
    if _unit(path) not in PURE:
        return
    for target in _dbcost_targets(path):
        assert target not in IO_LAYERS, f"{_rel(path)} (pure) imports dbcost.{target}"
    for name in _imports(path):
        assert name.split(".")[0] not in HEAVY, f"{_rel(path)} (pure) imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_aws_libraries_only_behind_the_seams(path: Path) -> None:
    """aioboto3/aiobotocore/botocore are imported only in transport/aws.py and the sinks."""
    rel = _rel(path)
    allowed = rel == "transport/aws.py" or rel.startswith("sinks/")
    for name in _imports(path):
        if name.split(".")[0] in AWS_LIBS:
            assert allowed, f"{rel} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_duckdb_only_in_the_store(path: Path) -> None:
    """duckdb is imported only inside the store package: it is the only owner of the store's SQL."""
    for name in _imports(path):
        if name.split(".")[0] == "duckdb":
            assert _unit(path) == "store", f"{_rel(path)} imports duckdb"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_sql_outside_the_store_and_the_postgres_sink(path: Path) -> None:
    """No string literal that is a SQL statement appears outside store/ and sinks/postgres.py."""
    rel = _rel(path)
    if _unit(path) == "store" or rel == "sinks/postgres.py":
        return
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            assert not _SQL.match(node.value), f"{rel}:{node.lineno}: SQL outside the store: {node.value[:60]!r}"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_only_the_cli_and_the_facade_sit_above_the_jobs(path: Path) -> None:
    """Use-cases (jobs/) are imported by the CLI, the facade and other jobs only; the CLI by nothing but its
    entry points; the emulator by the demo job, the CLI and itself."""
    unit = _unit(path)
    for target in _dbcost_targets(path):
        if target == "jobs":
            assert unit in ("cli", "__init__"), f"{_rel(path)} imports dbcost.jobs"
        if target == "cli":
            assert unit == "__main__", f"{_rel(path)} imports dbcost.cli"
        if target == "emulator":
            assert _rel(path) == "jobs/demo.py" or unit == "cli", f"{_rel(path)} imports dbcost.emulator"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_nothing_inside_imports_the_facade(path: Path) -> None:
    """No module imports the package root ``dbcost`` itself (the facade sits on top; importing it from below
    would make a cycle), except the CLI, which is a client of the facade."""
    if _unit(path) == "cli":
        return
    for name in _imports(path):
        assert name != "dbcost", f"{_rel(path)} imports the facade"


def test_import_dbcost_loads_no_heavy_library() -> None:
    """``import dbcost`` loads none of aiohttp, duckdb, aioboto3, botocore, pyarrow, rich, typer (lazy facade)."""
    code = f"import sys, dbcost; heavy = {HEAVY!r}; print(','.join(m for m in heavy if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import dbcost loaded: {out}"


def test_facade_names_resolve() -> None:
    """Every name in ``dbcost.__all__`` resolves (lazily) to an object."""
    import dbcost

    for name in dbcost.__all__:
        assert getattr(dbcost, name) is not None, name


#: what the CLI never reaches past the use-cases for: it turns options into settings and specs, calls jobs/, and
#: renders what they return
_CLI_NEVER = {"store", "pipeline", "client", "transport", "parse", "retry", "breaker", "emulator"}
CLI_MODULES = sorted((SRC / "cli").glob("*.py"))
#: inside cli/, imports point down this list: the app, then options and views, then the command modules,
#: then the package that mounts them (a command module never imports another one)
CLI_LAYERS: dict[str, int] = {"app": 0, "options": 1, "views": 1, "__init__": 3}


@pytest.mark.parametrize("path", CLI_MODULES, ids=_rel)
def test_cli_calls_jobs_not_the_layers_below_them(path: Path) -> None:
    """The CLI never imports the store, the pipeline, the client or the transport (it calls jobs/; the emulator's
    own CLI app is mounted), and inside cli/ it imports only modules below it (app < options, views < commands
    < __init__)."""
    rel = _rel(path)
    level = CLI_LAYERS.get(path.stem, 2)
    for name in _imports(path):
        if name == "dbcost.emulator.cli":
            continue
        parts = name.split(".")
        if parts[0] != "dbcost" or len(parts) == 1:
            continue
        assert parts[1] not in _CLI_NEVER, f"{rel} imports {name}"
        if parts[1] == "cli":
            if len(parts) == 2:  # `from dbcost.cli import fetch, ...`: the package mounting its commands
                assert path.stem == "__init__", f"{rel} imports {name}"
                continue
            assert CLI_LAYERS.get(parts[2], 2) < level, f"{rel} imports {name}"


def test_cli_is_a_package_of_several_modules() -> None:
    """The CLI rules above read the cli/ package, so they cannot pass by finding no files."""
    assert {"__init__", "app", "options", "views"} <= {p.stem for p in CLI_MODULES}
    assert not (SRC / "cli.py").exists()


# ------------------------------------------------------------------------- a command pays for its own imports

#: what no command needs to be mounted, to print its help or the version: the use-cases and what sits below them,
#: the libraries they pull in, the emulator's server, and the Settings and query models (the options' defaults
#: and the configuration come from dbcost.defaults)
_NOT_FOR_MOUNTING = ("aiobotocore", "botocore", "aioboto3", "boto3", "duckdb", "pyarrow", "aiohttp", "aiokafka",
                     "asyncpg", "dbcost.config", "dbcost.models", "dbcost.jobs.", "dbcost.store",
                     "dbcost.pipeline", "dbcost.client", "dbcost.transport", "dbcost.sinks", "dbcost.emulator.server",
                     "dbcost.advice", "dbcost.attribution", "dbcost.report", "dbcost.quota", "dbcost.notify")
#: what a backfill never uses: the other use-cases, what only they use, the emulator's server, and rich in a pipe
_NOT_FOR_BACKFILL = ("dbcost.advice", "dbcost.report", "dbcost.notify", "dbcost.quota", "dbcost.emulator.server",
                     "dbcost.emulator.fleet", "aiohttp.web", "rich",
                     *(f"dbcost.jobs.{job}" for job in ("advise", "attribute", "datasets", "demo", "export", "fetch",
                                                        "inventory", "quota", "report", "resources")))
#: a fetch writes a file: no store either
_NOT_FOR_FETCH = (*(m for m in _NOT_FOR_BACKFILL if m != "dbcost.jobs.fetch"), "dbcost.jobs.backfill",
                  "dbcost.jobs.metrics", "dbcost.store", "dbcost.pipeline", "duckdb", "pyarrow")

#: runs the CLI's entry point as ``dbcost`` with the arguments after ``--``, then prints the modules it imported
_RUN_AND_LIST = """\
import atexit, sys
atexit.register(lambda: print("\\nMODULES " + " ".join(sorted(sys.modules))))
sys.argv = ["dbcost", *sys.argv[sys.argv.index("--") + 1:]]
from dbcost.cli import main
main()
"""


def _imported_by(*args: str) -> set[str]:
    """The modules a ``dbcost ARGS`` process imported by the time it exited (it must exit 0)."""
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_LIST, "--", *args], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.rpartition("\nMODULES ")[2].split())


def _loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules of ``forbidden`` (a name, its submodules; a trailing dot: its submodules only) loaded."""
    return sorted(m for m in modules for f in forbidden
                  if m.startswith(f) if f.endswith(".") or m == f or m.startswith(f + "."))


def test_mounting_the_cli_loads_no_use_case() -> None:
    """``import dbcost.cli`` mounts every command without importing a use-case, the store, the client, an AWS,
    DuckDB, Arrow or aiohttp library, the emulator's server, pydantic or rich (each command imports its job when
    run)."""
    code = "import sys, dbcost.cli; print(' '.join(sorted(sys.modules)))"
    modules = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.split())
    assert not _loaded(modules, (*_NOT_FOR_MOUNTING, "pydantic", "rich")), "import dbcost.cli loaded these"


@pytest.mark.parametrize("args", [["--version"], ["backfill", "--help"], ["emulator", "serve", "--help"]],
                         ids=" ".join)
def test_version_and_help_load_no_use_case(args: list[str]) -> None:
    """``dbcost --version`` and a command's ``--help`` import no use-case and nothing below one (help draws with
    rich, and typer converts a command's options with pydantic; the version imports neither)."""
    modules = _imported_by(*args)
    assert not _loaded(modules, _NOT_FOR_MOUNTING), f"dbcost {' '.join(args)} loaded these"
    if args == ["--version"]:
        assert not _loaded(modules, ("rich", "pydantic")), "dbcost --version loaded these"


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """A small emulator as its own process (``dbcost emulator serve``), as a user starts one."""
    proc = subprocess.Popen([sys.executable, "-m", "dbcost", "emulator", "serve", "--clusters", "6",
                             "--today", "2026-11-28", "--page-size", "200"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_backfill_imports_only_its_own_use_case(emulator_url: str, tmp_path: Path) -> None:
    """A real ``dbcost backfill`` (into a store, output to a pipe) imports none of the advice, report, quota,
    notification or other jobs' modules, nor the emulator's server, aiohttp's server or rich."""
    modules = _imported_by("backfill", "--start", "2026-10-01", "--end", "2026-10-04", "--endpoint-url",
                           emulator_url, "--group-by", "SERVICE", "--db", str(tmp_path / "b.duckdb"),
                           "--today", "2026-11-28", "--json")
    assert "dbcost.jobs.backfill" in modules and "duckdb" in modules  # it did run
    assert not _loaded(modules, _NOT_FOR_BACKFILL), "dbcost backfill loaded these"


def test_a_fetch_imports_neither_the_store_nor_other_use_cases(emulator_url: str, tmp_path: Path) -> None:
    """A real ``dbcost fetch`` to a JSONL file imports no store (DuckDB, Arrow, the pipeline) and none of the
    other use-cases' modules."""
    modules = _imported_by("fetch", "--start", "2026-10-01", "--end", "2026-10-04", "--endpoint-url", emulator_url,
                           "--group-by", "SERVICE", "--output", str(tmp_path / "f.jsonl"))
    assert "dbcost.jobs.fetch" in modules and (tmp_path / "f.jsonl").stat().st_size > 0  # it did run
    assert not _loaded(modules, _NOT_FOR_FETCH), "dbcost fetch loaded these"
