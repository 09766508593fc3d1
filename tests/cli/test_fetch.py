"""`dbcost fetch` through the CLI: a --filter file it cannot use is exit 2 and one line naming the file."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli_async


async def test_fetch_filter_file_that_is_not_utf8_exits_2_with_one_line(tmp_path: Path) -> None:
    """A --filter @file that is not UTF-8, or absent, exits 2 with one stderr line naming it, nothing on stdout."""
    bad = tmp_path / "filter.json"
    bad.write_bytes(b'{"Dimensions": "\xff"}')
    for path, message in ((bad, "not UTF-8 text"), (tmp_path / "absent.json", "cannot read: No such file")):
        code, out, err = await run_cli_async("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--filter",
                                             f"@{path}", "--endpoint-url", "http://127.0.0.1:9")
        assert code == 2 and not out
        [line] = err.strip().splitlines()
        assert message in line and str(path) in line
