"""Output files: atomic on success, kept as .partial on failure, device nodes written in place."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dbcost.sinks.files import AtomicOutput


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
