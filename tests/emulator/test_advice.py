"""The fleet's right-sizing patterns and the advisories' ground truth: one of each pattern per full block of 50
clusters (none below 50, so small fleets are what they were), deterministic per seed, each kind in the truth,
and POST /_emulator/advisories answering what Emulator.advisories does."""

from __future__ import annotations

import collections
import datetime as dt
from decimal import Decimal

import aiohttp

from dbcost.emulator import Emulator, EmulatorConfig, Fleet
from dbcost.emulator.advice import advisories
from dbcost.emulator.fleet import PATTERNS

from .helpers import TODAY

OCTOBER = (dt.date(2026, 10, 1), dt.date(2026, 11, 1))


def test_fleets_under_50_clusters_carry_no_pattern() -> None:
    """A 49-cluster fleet has no pattern cluster, no Extended Support line, no Intel or previous-generation class."""
    fleet = Fleet(seed=7, clusters=49, accounts=6, anchor=TODAY)
    assert not any(c.pattern for c in fleet.clusters)
    assert not any("ExtendedSupport" in line.usage_type for line in fleet.lines)
    assert not any(c.instance_class and c.instance_class.split(".")[1] in ("m5", "r5", "m4", "r4", "t2")
                   for c in fleet.clusters)
    natural = {a["kind"] for a in advisories(fleet, start=OCTOBER[0], end=OCTOBER[1], today=TODAY)}
    # what an unplanted fleet may show by itself: I/O-heavy Aurora, Multi-AZ in staging, steady on-demand tables
    assert natural <= {"aurora-io-optimized", "multi-az-non-prod", "dynamodb-capacity-mode"}


def test_every_full_block_plants_each_pattern_at_most_once_on_an_old_live_cluster() -> None:
    """240 clusters: four blocks, each pattern once per block where an eligible cluster exists; never retired."""
    fleet = Fleet(seed=7, clusters=240, accounts=6, anchor=TODAY)
    planted = [c for c in fleet.clusters if c.pattern]
    per_block = collections.Counter((int(c.id[3:]) // 50, c.pattern) for c in planted)
    assert max(per_block.values()) == 1 and all(int(c.id[3:]) < 200 for c in planted)
    names = {name for name, _, _ in PATTERNS}
    assert {c.pattern for c in planted} == names
    assert all(c.retired is None and c.created < TODAY - dt.timedelta(days=1000) for c in planted)
    untagged = [c for c in planted if c.pattern == "es-untagged"]
    assert untagged and all(not c.tags for c in untagged)
    switched = [c for c in planted if c.pattern == "aurora-switched"]
    assert {c.switched for c in switched} == {dt.date(2026, 11, 3), dt.date(2026, 10, 17)}


def test_the_truth_lists_every_kind_and_is_deterministic_per_seed() -> None:
    """The default fleet's October truth has every advisory kind, equal for one seed, different for another."""
    def truth(seed: int) -> list[dict[str, str]]:
        return advisories(Fleet(seed=seed, clusters=240, accounts=6, anchor=TODAY), start=OCTOBER[0],
                          end=OCTOBER[1], today=TODAY)

    seven = truth(7)
    assert {a["kind"] for a in seven} == {"extended-support", "aurora-io-optimized", "multi-az-non-prod", "graviton",
                                          "previous-generation", "dynamodb-capacity-mode", "idle"}
    assert seven == truth(7) and seven != truth(8)
    assert all(Decimal(a["estimated_monthly_savings"]) > 0 for a in seven)
    bursty = {c.id for c in Fleet(seed=7, clusters=240, accounts=6, anchor=TODAY).clusters
              if c.pattern == "dynamodb-bursty"}
    assert bursty and not any(a["cluster"] in bursty for a in seven)  # bursty traffic stays on demand


def test_the_switched_cluster_bills_standard_until_the_switch_and_io_optimized_from_it() -> None:
    """aurora-switched: InstanceUsage and Aurora:StorageIOUsage stop at the switch day, the I/O-Optimized lines
    start on it; no day has both."""
    fleet = Fleet(seed=7, clusters=50, accounts=6, anchor=TODAY)
    (c,) = [c for c in fleet.clusters if c.pattern == "aurora-switched"]
    assert c.switched is not None

    def kinds(day: dt.date) -> set[str]:
        items = fleet.day(day)
        return {fleet.role(t).kind for t in items.tids if fleet.lines[t].cluster == c.id}

    before, after = kinds(c.switched - dt.timedelta(days=1)), kinds(c.switched)
    assert {"compute", "io"} <= before and not before & {"optimized-compute", "optimized-storage"}
    assert {"optimized-compute", "optimized-storage"} <= after and not after & {"compute", "io"}


async def test_the_admin_endpoint_answers_the_truth() -> None:
    """POST /_emulator/advisories {"month"} equals Emulator.advisories; options pass through; a bad month is 400."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=50)) as emu, aiohttp.ClientSession() as http:
        async with http.post(emu.url + "/_emulator/advisories", json={"month": "2026-10"}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body == emu.advisories("2026-10") and body["advisories"]
        async with http.post(emu.url + "/_emulator/advisories",
                             json={"month": "2026-10", "non_prod": ["qa"], "min_savings": "100"}) as resp:
            narrowed = await resp.json()
        assert not any(a["kind"] == "multi-az-non-prod" for a in narrowed["advisories"])
        assert all(Decimal(a["estimated_monthly_savings"]) >= 100 for a in narrowed["advisories"])
        async with http.post(emu.url + "/_emulator/advisories", json={"month": "2026-13"}) as resp:
            assert resp.status == 400
