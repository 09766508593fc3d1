"""Tables through a real terminal (a pseudo-terminal of 80 and 120 columns) and through a pipe, on
attribution fetched from the emulator: on a terminal they fit its width and cut no name or amount
(low-priority columns are left out and named); in a pipe or a file they are whole and the same whatever
the terminal; totals are rows of the tables; csv and json carry exact amounts; --output writes the same
bytes stdout would; the root's options work after the command."""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from decimal import Decimal
from pathlib import Path

import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S

MONTH = "2026-11"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with November attributed from the emulator (fetched once for the module)."""
    db = tmp_path_factory.mktemp("tables") / "s.duckdb"

    async def fill() -> None:
        async with Emulator(EmulatorConfig(today=TODAY)) as emu:
            for month in (MONTH,):
                code, _, err = await run_cli_async(
                    "attribute", "--month", month, "--db", str(db), "--endpoint-url", emu.url, "--today", TODAY_S,
                    "--max-rps", "100", "--format", "json",
                    env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
                assert code == 0, err

    asyncio.run(fill())
    return db


def in_terminal(cols: int, *args: str) -> tuple[int, str]:
    """``python -m dbcost ARGS`` with stdout and stderr on a pseudo-terminal ``cols`` wide (no COLUMNS in its
    environment: the width comes from the terminal, as in a shell); its output with colours stripped."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    proc = subprocess.Popen([sys.executable, "-m", "dbcost", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=60)
    return code, _ANSI.sub("", b"".join(chunks).decode()).replace("\r", "")


def piped(*args: str, columns: str = "80") -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "dbcost", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": columns}, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def attribution(store: Path) -> dict[str, object]:
    """The month's attribution as JSON (what the tables must show)."""
    code, out, err = piped("attribute", "--month", MONTH, "--db", str(store), "--offline", "--today", TODAY_S,
                           "--format", "json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


@pytest.mark.parametrize("cols", [80, 120])
def test_attribute_fits_the_terminal_without_cutting_a_name_or_an_amount(store: Path, attribution: dict[str, object],
                                                                         cols: int) -> None:
    """At 80 and 120 columns: no line wider than the terminal, no `…`; every team, its amount and the total
    are whole in the teams table; a left-out column is named."""
    code, text = in_terminal(cols, "attribute", "--month", MONTH, "--db", str(store), "--offline", "--today", TODAY_S)
    assert code == 0, text
    for line in text.splitlines():
        assert len(line) <= cols, line
        assert "…" not in line, line
    data = attribution
    for team in data["teams"]:  # type: ignore[attr-defined]
        amount = f"{Decimal(team['amount']):,.2f}"
        assert re.search(rf"│ {re.escape(team['team'])}\s+│\s+{re.escape(amount)} │", text), team
    total = f"{Decimal(str(data['total'])):,.2f}"
    assert re.search(rf"│ total\s+│\s+{re.escape(total)} │", text)
    if cols == 80:
        assert "left out to fit 80 columns:" in text


def test_report_fits_80_columns(store: Path) -> None:
    """report at 80 columns: every line fits, nothing is cut, the teams table ends with its total row."""
    code, text = in_terminal(80, "report", "--month", MONTH, "--db", str(store), "--today", TODAY_S)
    assert code == 0, text
    for line in text.splitlines():
        assert len(line) <= 80, line
        assert "…" not in line, line
    assert re.search(r"│ total\s+│\s+\$[\d,]+\.\d\d │", text)


def test_piped_tables_are_whole_and_the_same_at_any_width(store: Path, tmp_path: Path) -> None:
    """In a pipe a table is its natural width whatever COLUMNS says (80 or 200: the same bytes), has every
    category column and no `…`; --output FILE holds exactly what stdout got."""
    args = ("attribute", "--month", MONTH, "--db", str(store), "--offline", "--today", TODAY_S)
    code, narrow, err = piped(*args, columns="80")
    assert code == 0, err
    _, wide, _ = piped(*args, columns="200")
    assert narrow == wide
    assert "…" not in narrow and "left out" not in narrow
    header = next(line for line in narrow.splitlines() if "data_transfer" in line)
    assert all(c in header for c in ("compute", "storage", "io", "backup", "other", "shared"))
    assert max(len(line) for line in narrow.splitlines()) > 80  # wider than the terminal it was started from
    out = tmp_path / "a.txt"
    code, stdout, err = piped(*args, "--output", str(out))
    assert code == 0 and stdout == "", err
    assert out.read_text() == narrow
    code, report, err = piped("report", "--month", MONTH, "--db", str(store), "--today", TODAY_S)
    assert code == 0, err
    assert "…" not in report and "left out" not in report


def test_csv_carries_exact_amounts_that_sum_to_the_total(store: Path, attribution: dict[str, object]) -> None:
    """attribute and report --format csv: one row per team, cluster and category, exact decimal strings,
    summing to the JSON total to the last digit."""
    total = Decimal(str(attribution["total"]))
    for args in (("attribute", "--offline", "--today", TODAY_S), ("report", "--today", TODAY_S)):
        code, out, err = piped(*args, "--month", MONTH, "--db", str(store), "--format", "csv")
        assert code == 0, err
        rows = list(csv.DictReader(io.StringIO(out)))
        assert list(rows[0]) == ["month", "team", "cluster", "category", "amount", "owner_source"]
        assert sum(Decimal(r["amount"]) for r in rows) == total


def test_report_html_goes_to_stdout_like_every_format(store: Path, tmp_path: Path) -> None:
    """report --format html without --output (or with -) writes the page to stdout: the same as the file."""
    base = ("report", "--month", MONTH, "--db", str(store), "--today", TODAY_S, "--format", "html")
    code, page, err = piped(*base)
    assert code == 0, err
    assert page.lstrip().lower().startswith("<!doctype html")
    out = tmp_path / "r.html"
    code, _, err = piped(*base, "--output", str(out))
    assert code == 0, err
    strip = re.compile(r"generated[^<]*")  # the page says when it was generated
    assert strip.sub("", out.read_text()) == strip.sub("", page)


def test_root_options_work_after_the_command(tmp_path: Path) -> None:
    """`dbcost fetch --log-format json ...` is `dbcost --log-format json fetch ...`; a bad choice after the
    command is one line, exit 2; `--config FILE` after the command gives that command its defaults (and
    `config show` names the file); --version prints the version."""
    code, out, err = piped("fetch", "--start", "x", "--end", "2026-11-02", "--log-format", "json")
    assert code == 2 and out == ""
    line = json.loads(err)
    assert line["level"] == "error" and "start" in line["message"]
    code, _, err = piped("fetch", "--log-format", "xml", "--start", "2026-11-01", "--end", "2026-11-02")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--log-format" in err
    code, out, _ = piped("--version")
    assert code == 0 and out.startswith("dbcost ")
    conf = tmp_path / "dbcost.toml"
    conf.write_text(f'db = "{tmp_path / "configured.duckdb"}"\n')
    code, out, err = piped("config", "show", "--config", str(conf), "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["file"] == str(conf)
    assert {v["key"]: v["value"] for v in shown["values"]}["db"] == str(tmp_path / "configured.duckdb")
    code, _, err = piped("datasets", "--config", str(conf))
    assert code == 2 and "configured.duckdb" in err  # the configured store (which does not exist) was read


def test_json_is_an_alias_and_csv_has_one_row_per_unit(tmp_path: Path) -> None:
    """backfill --dry-run: --json prints exactly what --format json does; --format csv one row per planned
    unit; --output FILE holds it and stdout stays empty; nothing is written to the store."""
    base = ("backfill", "--start", "2026-10-01", "--end", "2026-11-01", "--dry-run", "--today", TODAY_S,
            "--db", str(tmp_path / "s.duckdb"))
    _, alias, _ = piped(*base, "--json")
    code, as_format, err = piped(*base, "--format", "json")
    assert code == 0 and alias == as_format, err
    plan = json.loads(alias)
    out = tmp_path / "plan.csv"
    code, stdout, err = piped(*base, "--format", "csv", "--output", str(out))
    assert code == 0 and stdout == "", err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["start"], r["end"]) for r in rows] == [(u["start"], u["end"]) for u in plan["units"]]
    assert not (tmp_path / "s.duckdb").exists()
