"""Reading the files a user names: every file option goes through one reader, so bytes that are not UTF-8
are one ConfigError line naming the file, chained to the decode error."""

from __future__ import annotations

from pathlib import Path

import pytest

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
