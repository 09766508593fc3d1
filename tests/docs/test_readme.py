"""README examples run as written: every fenced ``sh``/``bash``/``console``/``python`` block says whether it runs.

The comment line right above such a block is its marker: ``<!-- run: emulator ... -->`` (this test executes it,
unchanged, against ``dbcost emulator serve`` started as a process, with the environment the README tells the
reader to set: ``AWS_ENDPOINT_URL_COST_EXPLORER`` and placeholder keys) or ``<!-- not-run: REASON -->`` (it needs
AWS, a Docker daemon, brokers or the network; the reason is required). A block without a marker fails, and
:data:`EXPECTED_RUN` pins which blocks run, so marking an example not-run is a visible change to this test.
``sh``/``bash`` blocks run under ``bash -euo pipefail`` in a fresh directory (``console`` blocks: the ``$ ``
lines), ``python`` blocks as a script, each with the ``dbcost`` of this checkout first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dbcost

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: the block languages that are examples to run (others are synopses, payloads, SQL or data)
LANGS = frozenset({"sh", "bash", "console", "python"})
_MARKER = re.compile(r"^<!--\s*(run|not-run):\s*(.*?)\s*-->$")
_SRC = str(Path(dbcost.__file__).resolve().parents[1])

#: (section heading, language) of every block that runs, in README order
EXPECTED_RUN = [
    ("FOCUS", "sh"),
    ("`dbcost emulator serve` and `dbcost demo`", "sh"),
    ("Library", "python"),
    ("Library", "python"),
]


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    heading: str
    marker: str | None  # "run" / "not-run" / None
    reason: str
    code: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced example blocks of ``text`` with their marker and the heading of their section."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            indent, lang = fence.groups()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if lang in LANGS:
                prev = lines[i - 1].strip() if i else ""
                m = _MARKER.match(prev)
                code = "\n".join(x[len(indent):] for x in lines[i + 1:end]) + "\n"
                blocks.append(Block(i + 1, lang, heading, m.group(1) if m else None, m.group(2) if m else "", code))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.marker == "run"]


def test_every_example_block_says_whether_it_runs() -> None:
    """No example block is left unmarked, and a not-run one states its reason."""
    unmarked = [b.id for b in BLOCKS if b.marker is None]
    assert not unmarked, f"mark these README blocks <!-- run: ... --> or <!-- not-run: REASON -->: {unmarked}"
    assert all(b.reason for b in BLOCKS if b.marker == "not-run")


def test_the_blocks_that_run_are_the_library_and_cli_examples() -> None:
    """Which blocks run is pinned: both library examples and the CLI walk-through among them."""
    assert [(b.heading, b.lang) for b in RUN] == EXPECTED_RUN


@pytest.fixture(scope="module")
def emulator_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``dbcost emulator serve`` as a process (a small fleet, to stay quick) and the environment the README
    tells the reader to set for it."""
    env = {**os.environ, "PYTHONPATH": _SRC}
    home = tmp_path_factory.mktemp("readme-aws")
    proc = subprocess.Popen([sys.executable, "-m", "dbcost", "emulator", "serve", "--port", "0", "--clusters", "24"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        env.update({
            "AWS_ENDPOINT_URL_COST_EXPLORER": url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        })
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _script(block: Block) -> list[str]:
    if block.lang == "python":
        return [sys.executable, "-c", block.code]
    code = block.code
    if block.lang == "console":
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"
    return ["bash", "-euo", "pipefail", "-c", code]


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block_runs_against_the_emulator(block: Block, emulator_env: dict[str, str], tmp_path: Path) -> None:
    """The block, exactly as the README has it, exits 0 against the emulator with no traceback."""
    assert block.reason.startswith("emulator"), f"{block.id}: the only run environment is the emulator"
    done = subprocess.run(_script(block), cwd=tmp_path, env=emulator_env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
