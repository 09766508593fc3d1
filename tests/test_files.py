"""The files a user names (dbcost._files): one reader, so bytes that are not UTF-8 are one ConfigError line
naming the file; one writer, atomic on success, kept as .partial on failure, device nodes written in place."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dbcost._files import AtomicOutput, atomic_path, write_text_atomic
from dbcost.attribution.classify import load_rules
from dbcost.attribution.pools import load_topology
from dbcost.config import load_targets
from dbcost.errors import ConfigError
from dbcost.quota import load_policy


@pytest.mark.parametrize("reader", ["targets", "topology", "rules", "policy"])
def test_a_file_that_is_not_utf8_is_one_config_error_line(reader: str, tmp_path: Path) -> None:
    """Every file option goes through one reader: bytes that are not UTF-8 give a ConfigError naming the
    file (before, targets, topology and rules files raised a bare UnicodeDecodeError traceback)."""
    path = tmp_path / ("bad.csv" if reader == "topology" else "bad.toml")
    path.write_bytes(b'name = "\xff\xfe"\n')
    load = {"targets": load_targets, "topology": load_topology, "rules": load_rules, "policy": load_policy}[reader]
    with pytest.raises(ConfigError, match=r"bad\.(csv|toml): not UTF-8 text$") as info:
        load(path)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_complete_file_appears_only_on_success(tmp_path: Path) -> None:
    """The target exists only after the block succeeds; no temp file is left behind."""
    target = tmp_path / "out.jsonl"
    with AtomicOutput(target) as f:
        f.write(b"line\n")
        assert not target.exists()
    assert target.read_bytes() == b"line\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_failure_keeps_what_was_written_as_partial(tmp_path: Path) -> None:
    """On failure the target is untouched and the paid-for records are kept in <target>.partial."""
    target = tmp_path / "out.jsonl"
    out = AtomicOutput(target)

    def fail_midway() -> None:
        with out as f:
            f.write(b"record\n")
            raise RuntimeError("API failed")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert not target.exists()
    assert out.partial_path == tmp_path / "out.jsonl.partial" and out.partial_path.read_bytes() == b"record\n"


def test_character_device_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    """--output /dev/null must stay the device: no temp file renamed over it."""
    with AtomicOutput("/dev/null") as f:
        f.write(b"discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_atomic_path_renames_on_success_and_removes_on_failure(tmp_path: Path) -> None:
    """A path-taking writer (pyarrow, COPY) sees a temp path; the target appears only if the block succeeds."""
    target = tmp_path / "t.parquet"

    def die() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")

    with pytest.raises(RuntimeError):
        die()
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


def test_write_text_atomic_sets_the_mode_and_refuses_a_missing_directory(tmp_path: Path) -> None:
    """A metrics textfile is world-readable (0644, mkstemp alone gives 0600); a missing directory is one line."""
    target = tmp_path / "dbcost.prom"
    write_text_atomic(target, "x 1\n", mode=0o644)
    assert target.read_text() == "x 1\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    with pytest.raises(ConfigError, match=r"directory .* does not exist"):
        write_text_atomic(tmp_path / "nope" / "r.html", "<html>")
