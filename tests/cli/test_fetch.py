"""`dbcost fetch` through the CLI: a --filter file it cannot use is exit 2 and one line naming the file."""

from __future__ import annotations

import json
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


def _no_credentials(tmp_path: Path) -> dict[str, str]:
    """An environment in which the AWS chain finds nothing: no keys, no files, no instance metadata."""
    return {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}


async def test_a_request_without_credentials_is_not_counted_as_sent(tmp_path: Path) -> None:
    """No credentials: the request is never signed nor sent, so the summary counts requests=0 (issue 14)."""
    from dbcost.emulator import Emulator, EmulatorConfig

    summary = tmp_path / "summary.json"
    async with Emulator(EmulatorConfig()) as emu:
        code, _, err = await run_cli_async("fetch", "--start", "2026-10-01", "--end", "2026-10-02",
                                             "--endpoint-url", emu.url, "--summary-json", str(summary),
                                             "-o", str(tmp_path / "out.jsonl"), env=_no_credentials(tmp_path))
        served = emu.stats()["pages_served"]
    assert code == 1 and "Unable to locate credentials" in err
    assert "requests=1" not in err
    assert json.loads(summary.read_text())["requests"] == 0 and served == 0
