"""Parsing pages: every real sample parses; a malformed group is quarantined and its neighbours kept."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbcost.errors import MalformedResponseError
from dbcost.models import Metric
from dbcost.parse import parse_page
from tests.conftest import SAMPLES


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def test_sample_two_group_keys_dimension_plus_tag() -> None:
    """Sample 01: SERVICE + TAG keys named from GroupDefinitions, untagged `Environment$` becomes ''."""
    page = parse_page(load("01_awscli_two_groupkeys_dimension_plus_tag.json"), granularity="MONTHLY")
    assert not page.quarantined
    assert [r.keys for r in page.records] == [
        {"SERVICE": "Amazon Simple Storage Service", "TAG:Environment": ""},
        {"SERVICE": "Amazon Simple Storage Service", "TAG:Environment": "Dev"},
    ]
    first = page.records[0]
    assert first.metrics["UnblendedCost"] == Metric(Decimal("40.3543773134"), "USD")
    assert first.metrics["UsageQuantity"] == Metric(Decimal("9312771.098461578"), "N/A")
    assert first.to_json()["metrics"]["BlendedCost"] == {"amount": "40.3527508453", "unit": "USD"}
    assert (first.period_start, first.period_end, first.estimated) == ("2017-09-01", "2017-10-01", False)


def test_sample_service_monthly_with_zero_amounts() -> None:
    """Sample 02: every SERVICE group parses, zero amounts included, sum exact."""
    raw = load("02_groupby_service_monthly_cloudscape_excerpt.json")
    page = parse_page(raw, granularity="MONTHLY", metrics=["UnblendedCost"])
    groups = raw["ResultsByTime"][0]["Groups"]
    assert len(page.records) == len(groups) and not page.quarantined
    expected = sum(Decimal(g["Metrics"]["UnblendedCost"]["Amount"]) for g in groups)
    assert sum(r.metrics["UnblendedCost"].amount for r in page.records) == expected
    assert any(r.metrics["UnblendedCost"].amount == 0 for r in page.records)


def test_sample_total_only_no_groupby_estimated_flip() -> None:
    """Sample 03: no GroupBy -> one record per period from Total, with empty keys; Estimated kept per period."""
    raw = load("03_total_only_no_groupby_daily_estimated_flip.json")
    page = parse_page(raw, granularity="DAILY", metrics=["BlendedCost"])
    assert len(page.records) == len(raw["ResultsByTime"]) and not page.quarantined
    assert all(r.keys == {} for r in page.records)
    flags = {r.period_start: r.estimated for r in page.records}
    assert flags["2021-10-15"] is False
    assert flags["2021-11-01"] is True


@pytest.mark.parametrize("name", ["05_get_dimension_values_service_awscli.json", "06_get_tags_awscli.json"])
def test_other_operation_samples_have_the_shapes_the_client_reads(name: str) -> None:
    """Samples 05/06: the fields the client reads (DimensionValues[].Value, Tags[]) are there."""
    raw = load(name)
    if "DimensionValues" in raw:
        assert all(isinstance(v["Value"], str) for v in raw["DimensionValues"])
    else:
        assert all(isinstance(t, str) for t in raw["Tags"])


def two_key_page() -> dict[str, Any]:
    return {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}],
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"},
                "Total": {},
                "Estimated": False,
                "Groups": [
                    {"Keys": ["Amazon DynamoDB", f"db-cluster$db-{i:04d}"],
                     "Metrics": {"UnblendedCost": {"Amount": f"{i}.1000000000", "Unit": "USD"}}}
                    for i in range(5)
                ],
            }
        ],
    }


MALFORMATIONS: list[tuple[str, Any, str]] = [
    ("nan", {"Keys": ["Amazon DynamoDB", "db-cluster$x"],
             "Metrics": {"UnblendedCost": {"Amount": "NaN", "Unit": "USD"}}}, "not a plain decimal"),
    ("comma", {"Keys": ["Amazon DynamoDB", "db-cluster$x"],
               "Metrics": {"UnblendedCost": {"Amount": "12,50", "Unit": "USD"}}}, "not a plain decimal"),
    ("empty", {"Keys": ["Amazon DynamoDB", "db-cluster$x"],
               "Metrics": {"UnblendedCost": {"Amount": "", "Unit": "USD"}}}, "empty"),
    ("no-amount", {"Keys": ["Amazon DynamoDB", "db-cluster$x"], "Metrics": {"UnblendedCost": {"Unit": "USD"}}},
     "Amount missing"),
    ("no-unit", {"Keys": ["Amazon DynamoDB", "db-cluster$x"], "Metrics": {"UnblendedCost": {"Amount": "1"}}},
     "Unit missing"),
    ("no-metrics", {"Keys": ["Amazon DynamoDB", "db-cluster$x"]}, "Metrics missing"),
    ("empty-metrics", {"Keys": ["Amazon DynamoDB", "db-cluster$x"], "Metrics": {}}, "Metrics missing"),
    ("key-count", {"Keys": ["Amazon DynamoDB"], "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}},
     "Keys has 1 values"),
    ("no-keys", {"Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}, "Keys missing"),
    ("tag-prefix", {"Keys": ["Amazon DynamoDB", "team$x"],
                    "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}, "does not start with"),
    ("number", {"Keys": ["Amazon DynamoDB", "db-cluster$x"],
                "Metrics": {"UnblendedCost": {"Amount": 1.5, "Unit": "USD"}}}, "must be a string"),
    ("not-object", "garbage", "not an object"),
    ("wrong-metric", {"Keys": ["Amazon DynamoDB", "db-cluster$x"],
                      "Metrics": {"BlendedCost": {"Amount": "1", "Unit": "USD"}}}, "lacks UnblendedCost"),
]


@pytest.mark.parametrize(("label", "bad", "reason"), MALFORMATIONS, ids=[m[0] for m in MALFORMATIONS])
def test_malformed_group_is_quarantined_and_neighbours_kept(label: str, bad: Any, reason: str) -> None:
    """One bad group in the middle of a period: quarantined with raw JSON, reason, period, page; others kept."""
    raw = two_key_page()
    raw["ResultsByTime"][0]["Groups"].insert(2, copy.deepcopy(bad))
    page = parse_page(raw, page=7, granularity="DAILY", metrics=["UnblendedCost"])
    assert len(page.records) == 5
    assert sum(r.metrics["UnblendedCost"].amount for r in page.records) == Decimal("10.5")
    [q] = page.quarantined
    assert reason in q.reason
    assert (q.period_start, q.period_end, q.page) == ("2026-09-01", "2026-09-02", 7)
    assert q.raw == bad


def test_result_without_time_period_is_quarantined_whole() -> None:
    """A result whose TimePeriod is missing cannot be placed: quarantined whole, other periods kept."""
    raw = two_key_page()
    broken = copy.deepcopy(raw["ResultsByTime"][0])
    del broken["TimePeriod"]
    raw["ResultsByTime"].append(broken)
    page = parse_page(raw, granularity="DAILY")
    assert len(page.records) == 5 and len(page.quarantined) == 1
    assert "TimePeriod" in page.quarantined[0].reason


def test_missing_estimated_means_not_final() -> None:
    """A result without Estimated is treated as estimated, so a sync re-reads it."""
    raw = two_key_page()
    del raw["ResultsByTime"][0]["Estimated"]
    assert all(r.estimated for r in parse_page(raw).records)


def test_groupby_period_with_total_and_no_groups_becomes_a_keyless_record() -> None:
    """With GroupBy, a period that has a Total and no groups still yields its money (empty keys)."""
    raw = two_key_page()
    raw["ResultsByTime"].append({"TimePeriod": {"Start": "2026-09-02", "End": "2026-09-03"}, "Estimated": True,
                                 "Groups": [], "Total": {"UnblendedCost": {"Amount": "3.5", "Unit": "USD"}}})
    page = parse_page(raw)
    last = page.records[-1]
    assert last.keys == {} and last.metrics["UnblendedCost"].amount == Decimal("3.5")


def test_group_definitions_from_the_query_when_the_page_has_none() -> None:
    """Keys are named from the query's GroupBy when a page carries no GroupDefinitions."""
    raw = two_key_page()
    defs = raw.pop("GroupDefinitions")
    page = parse_page(raw, group_definitions=defs)
    assert page.records[0].keys == {"SERVICE": "Amazon DynamoDB", "TAG:db-cluster": "db-0000"}


@pytest.mark.parametrize(
    "payload",
    [[], "x", {"ResultsByTime": {}}, {"ResultsByTime": [], "GroupDefinitions": {}},
     {"ResultsByTime": [], "GroupDefinitions": [{"Type": "WHAT", "Key": "x"}]},
     {"ResultsByTime": [], "NextPageToken": 5}],
)
def test_page_that_is_not_a_cost_explorer_response_is_an_error(payload: Any) -> None:
    """A page without the basic shape is a MalformedResponseError, not silently empty."""
    with pytest.raises(MalformedResponseError):
        parse_page(payload)


tag_text = st.text(alphabet=st.characters(blacklist_characters="$", blacklist_categories=["Cs"]), max_size=20)


@given(key=tag_text.filter(bool), value=st.text(max_size=30))
def test_tag_keys_round_trip(key: str, value: str) -> None:
    """Any tag key/value pair in `key$value` form parses back to the value ('' when untagged)."""
    raw = {
        "GroupDefinitions": [{"Type": "TAG", "Key": key}],
        "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                           "Groups": [{"Keys": [f"{key}${value}"],
                                       "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]}],
    }
    page = parse_page(raw)
    assert not page.quarantined
    assert page.records[0].keys == {f"TAG:{key}": value}


@given(amounts=st.lists(st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**12), max_value=10**12).map(
        lambda d: format(d, "f")),
    st.sampled_from(["NaN", "", "1,5", "Infinity", " 2"]),
), max_size=40))
def test_every_group_is_a_record_or_quarantined(amounts: list[str]) -> None:
    """Nothing disappears: records + quarantined == groups, and the record sum is exact."""
    groups = [{"Keys": [f"s{i}"], "Metrics": {"UnblendedCost": {"Amount": a, "Unit": "USD"}}}
              for i, a in enumerate(amounts)]
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Groups": groups}]}
    page = parse_page(raw)
    assert len(page.records) + len(page.quarantined) == len(groups)
    good = [Decimal(a) for a in amounts if a not in {"NaN", "", "1,5", "Infinity", " 2"}]
    assert sum(r.metrics["UnblendedCost"].amount for r in page.records) == sum(good)


@given(service=st.text(max_size=20), key=tag_text.filter(bool), value=st.text(max_size=20),
       other=tag_text.filter(bool))
def test_dimension_plus_tag_keys_round_trip_or_quarantine(service: str, key: str, value: str, other: str) -> None:
    """SERVICE x TAG (the unrolled fast path): `key$value` parses back; a group carrying another tag key's
    prefix is quarantined, never mis-named."""
    raw_key = f"{other}${value}"
    raw = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": key}],
        "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                           "Groups": [{"Keys": [service, raw_key],
                                       "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]}],
    }
    page = parse_page(raw)
    if raw_key.startswith(f"{key}$"):
        assert page.records[0].keys == {"SERVICE": service, f"TAG:{key}": raw_key[len(key) + 1:]}
    else:
        assert not page.records and "does not start with" in page.quarantined[0].reason


_METRIC_ENTRY = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**12), max_value=10**12).map(
        lambda d: {"Amount": format(d, "f"), "Unit": "USD"}),
    st.sampled_from([{"Amount": "1.5E-7", "Unit": "USD"}, {"Amount": "2E+3", "Unit": "USD"},
                     {"Amount": "NaN", "Unit": "USD"}, {"Amount": "01", "Unit": "USD"},
                     {"Amount": "1", "Unit": ""}, {"Amount": 1, "Unit": "USD"}, {"Unit": "USD"}, "1"]),
)


@given(groups=st.lists(st.dictionaries(st.sampled_from(["UnblendedCost", "BlendedCost"]), _METRIC_ENTRY,
                                       max_size=2), max_size=30))
def test_one_metric_fast_path_agrees_with_the_general_path(groups: list[dict[str, Any]]) -> None:
    """With one required metric the parser takes an unrolled path; it must keep and quarantine exactly what
    the general loop does (exponent forms kept, a missing or extra metric name, bad amounts quarantined)."""
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [{"Keys": [f"s{i}"], "Metrics": m} for i, m in enumerate(groups)]}]}
    fast = parse_page(copy.deepcopy(raw), metrics=["UnblendedCost"])
    # the general loop, with no metric required, is the oracle: the same records less those lacking
    # UnblendedCost, which are quarantined for that reason instead
    general = parse_page(copy.deepcopy(raw))
    lacking = [r for r in general.records if "UnblendedCost" not in r.metrics]
    assert fast.records == [r for r in general.records if "UnblendedCost" in r.metrics]
    assert len(fast.quarantined) == len(general.quarantined) + len(lacking)
    for q in fast.quarantined:
        if q.raw in [g.raw for g in general.quarantined]:
            continue
        assert q.reason == "Metrics lacks UnblendedCost"


def test_one_metric_fast_path_keeps_an_exponent_amount() -> None:
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [{"Keys": ["a"], "Metrics": {"UnblendedCost": {"Amount": "1.5E-7",
                                                                                      "Unit": "USD"}}}]}]}
    page = parse_page(raw, metrics=["UnblendedCost"])
    assert not page.quarantined
    assert page.records[0].metrics["UnblendedCost"] == Metric(Decimal("1.5E-7"), "USD")


def test_impossible_dates_and_missing_results_are_not_accepted() -> None:
    """2026-13-45 is not a period; a page without ResultsByTime is malformed, not empty."""
    page = parse_page({"ResultsByTime": [{"TimePeriod": {"Start": "2026-13-45", "End": "2026-13-46"},
                                          "Total": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]})
    assert not page.records and "TimePeriod" in page.quarantined[0].reason
    with pytest.raises(MalformedResponseError, match="ResultsByTime"):
        parse_page({"message": "oops"})


@pytest.mark.parametrize(("amount", "ok"), [("1.5E-7", True), ("12.50000000000", True), ("0.0000001361", True),
                                            ("1234567890123456789.12345678901", False), ("\u0661\u0662.\u0665", False)])
def test_group_fast_and_slow_paths_agree(amount: str, ok: bool) -> None:
    """A valid amount the fast path does not recognise is parsed by the full check, never quarantined as
    'group is not valid'; a huge or non-ASCII amount is quarantined with its real reason, never a crash."""
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": amount,
                                                                                         "Unit": "USD"}}}]}]}
    page = parse_page(raw)
    assert bool(page.records) is ok
    if not ok:
        assert page.quarantined[0].reason != "group is not valid"


# ------------------------------------------------------------------------------------- columnar pages

_KEY = st.one_of(st.sampled_from(["db$aurora-1", "db$", "RDS", "other$x"]), st.integers(0, 3))
_GROUP = st.one_of(
    st.fixed_dictionaries({"Keys": st.lists(_KEY, min_size=2, max_size=2),
                           "Metrics": st.dictionaries(st.sampled_from(["UnblendedCost", "BlendedCost"]),
                                                      _METRIC_ENTRY, min_size=0, max_size=2)}),
    st.sampled_from([{"Keys": ["RDS"]}, {"Keys": "RDS"}, "group", None]),
)
_RESULT = st.fixed_dictionaries({
    "TimePeriod": st.sampled_from([{"Start": "2026-01-01", "End": "2026-01-02"},
                                   {"Start": "2026-01-02", "End": "2026-01-03"}, {"Start": "x"}]),
    "Estimated": st.sampled_from([False, True, "yes"]),
    "Groups": st.lists(_GROUP, max_size=12),
    "Total": st.sampled_from([{}, {"UnblendedCost": {"Amount": "3.25", "Unit": "USD"}}, {"UnblendedCost": "x"}]),
})


def _stage_lists(batch: Any) -> list[list[Any]]:
    """A StageBatch's rows, column by column, as Python values."""
    import nanoarrow as na

    return [list(na.Array(col).to_pylist()) for col in batch.rows] if batch.rows is not None else []


@given(results=st.lists(_RESULT, max_size=4))
def test_a_columnar_page_holds_what_a_page_of_records_holds(results: list[dict[str, Any]]) -> None:
    """Built as columns (what a backfill stages), a page keeps, quarantines and orders exactly what the page
    of records does, whatever mix of fast-path, slow-path (exponent, two metrics), bad and Total-only groups it
    holds; the store stages the same rows from either."""
    from dbcost.store.records import stage_batch

    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db"}],
           "ResultsByTime": results}
    plain = parse_page(copy.deepcopy(raw), granularity="DAILY", metrics=["UnblendedCost"])
    cols = parse_page(copy.deepcopy(raw), granularity="DAILY", metrics=["UnblendedCost"], columnar=True)
    assert cols.columns is not None
    assert cols.n_records == len(plain.records)
    assert cols.last_period_start == (plain.records[-1].period_start if plain.records else None)
    names = ["USAGE_TYPE", "TAG:db"]
    assert _stage_lists(stage_batch(names, [cols])) == _stage_lists(stage_batch(names, [plain]))
    assert cols.quarantined == plain.quarantined
    assert cols.records == plain.records and cols.columns is None  # made once, then the page's one copy


def test_a_columnar_page_stages_each_amount_as_received() -> None:
    """The staged text of a plain amount is the string received, digit for digit (trailing zeros too); an
    exponent amount takes the slow path and is staged in plain notation, exactly."""
    from dbcost.store.records import stage_batch

    amounts = ["12.5000000000", "0.0000000001", "-0.10", "1234567890123456789012345678.1", "1.5E-7"]
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [{"Keys": ["u", f"db$c{i}"], "Metrics": {"UnblendedCost": {
                                  "Amount": a, "Unit": "USD"}}} for i, a in enumerate(amounts)]}]}
    page = parse_page(raw, granularity="DAILY", metrics=["UnblendedCost"], columnar=True)
    staged = _stage_lists(stage_batch(["USAGE_TYPE", "TAG:db"], [page]))
    assert staged[5] == [*amounts[:4], "0.00000015"]
    assert [r.metrics["UnblendedCost"].amount for r in page.records] == [Decimal(a) for a in amounts]


def test_a_columnar_page_keeps_slow_path_groups_in_their_place() -> None:
    """Fast-path groups around a two-metric group and an exponent amount: every row keeps its own metric,
    amount and place, and the records made from the columns are the records."""
    def group(i: int, **metrics: str) -> dict[str, Any]:
        return {"Keys": ["u", f"db$c{i}"], "Metrics": {n: {"Amount": a, "Unit": "USD"} for n, a in metrics.items()}}

    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [group(0, UnblendedCost="1"), group(1, UnblendedCost="2", BlendedCost="3"),
                                         group(2, UnblendedCost="4"), group(3, UnblendedCost="5E-1"),
                                         group(4, UnblendedCost="6")]}]}
    plain = parse_page(copy.deepcopy(raw), metrics=["UnblendedCost"])
    page = parse_page(copy.deepcopy(raw), metrics=["UnblendedCost"], columnar=True)
    assert page.columns is not None
    assert list(zip(page.columns.key2, page.columns.metric, page.columns.amount_text, strict=True)) == [
        ("c0", "UnblendedCost", "1"), ("c1", "UnblendedCost", "2"), ("c1", "BlendedCost", "3"),
        ("c2", "UnblendedCost", "4"), ("c3", "UnblendedCost", "0.5"), ("c4", "UnblendedCost", "6")]
    assert page.n_records == 5 and page.records == plain.records


@pytest.mark.parametrize("name", ["01_awscli_two_groupkeys_dimension_plus_tag.json",
                                  "02_groupby_service_monthly_cloudscape_excerpt.json",
                                  "03_total_only_no_groupby_daily_estimated_flip.json"])
def test_every_sample_parses_the_same_as_columns(name: str) -> None:
    """Each real GetCostAndUsage sample gives the same records and quarantine built as columns (one metric)."""
    raw = load(name)
    metric = next(iter(raw["ResultsByTime"][0].get("Total") or raw["ResultsByTime"][0]["Groups"][0]["Metrics"]))
    plain = parse_page(copy.deepcopy(raw), granularity="MONTHLY", metrics=[metric])
    cols = parse_page(copy.deepcopy(raw), granularity="MONTHLY", metrics=[metric], columnar=True)
    assert cols.columns is not None and cols.n_records == len(plain.records) > 0
    assert cols.records == plain.records and cols.quarantined == plain.quarantined


def test_a_query_of_several_metrics_is_not_columnar() -> None:
    """Columns hold one metric per group: a query of two metrics gives a page of records."""
    page = parse_page(load("01_awscli_two_groupkeys_dimension_plus_tag.json"),
                      metrics=["UnblendedCost", "UsageQuantity"], columnar=True)
    assert page.columns is None and len(page.records) == 2


# ------------------------------------------------------------------------------------------ the typed decode

_TWO_KEYS = [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db"}]


def _columns_of_parse(raw: dict[str, Any], defs: list[dict[str, str]], metric: str = "UnblendedCost") -> Any:
    """What parse_page makes of ``raw`` as columns (the general path the typed decode must agree with)."""
    page = parse_page(copy.deepcopy(raw), granularity="DAILY", group_definitions=defs, metrics=[metric],
                      columnar=True)
    return page.columns, page.quarantined, page.next_token


@given(results=st.lists(_RESULT, max_size=4), token=st.sampled_from([None, "t-1"]),
       echo=st.booleans())
def test_the_typed_decode_agrees_with_the_general_path_or_declines(results: list[dict[str, Any]],
                                                                   token: str | None, echo: bool) -> None:
    """On any page (valid, quarantining, Total-only, odd periods), the typed decode either declines (None) or
    gives exactly the general path's columns and token, and it only decodes pages with nothing to quarantine."""
    from dbcost.parse import fast_decoder

    raw: dict[str, Any] = {"ResultsByTime": results}
    if echo:
        raw["GroupDefinitions"] = _TWO_KEYS
    if token:
        raw["NextPageToken"] = token
    decode = fast_decoder(_TWO_KEYS, ["UnblendedCost"], "DAILY")
    fast = decode(json.dumps(raw).encode())
    if fast is None:
        return
    columns, quarantined, next_token = _columns_of_parse(raw, _TWO_KEYS)
    assert quarantined == [] and not columns.multi
    assert fast.columns == columns and fast.next_token == next_token


_VALID_GROUP = st.builds(
    lambda svc, tag, amount, unit: {"Keys": [svc, f"db${tag}"], "Metrics": {"UnblendedCost": {
        "Amount": format(amount, "f"), "Unit": unit}}},
    st.text(min_size=0, max_size=8), st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=10, min_value=-(10**12), max_value=10**12),
    st.sampled_from(["USD", "Hrs", "GB-Mo"]))


@given(days=st.lists(st.tuples(st.sampled_from([("2026-01-01", "2026-01-02"), ("2026-01-02", "2026-01-03")]),
                               st.booleans(), st.lists(_VALID_GROUP, max_size=8)), max_size=3))
def test_the_typed_decode_takes_every_well_formed_page(days: list[tuple[tuple[str, str], bool, list[Any]]]) -> None:
    """A page whose every group is well formed (any key text, any plain amount, any unit) is decoded by the
    typed path, into the general path's columns: the fast case really is the common case."""
    from dbcost.parse import fast_decoder

    raw = {"GroupDefinitions": _TWO_KEYS, "ResultsByTime": [
        {"TimePeriod": {"Start": s, "End": e}, "Estimated": est, "Groups": groups, "Total": {}}
        for (s, e), est, groups in days]}
    fast = fast_decoder(_TWO_KEYS, ["UnblendedCost"], "DAILY")(json.dumps(raw).encode())
    assert fast is not None
    columns, quarantined, _ = _columns_of_parse(raw, _TWO_KEYS)
    assert fast.columns == columns and quarantined == []


def _one_good_page() -> dict[str, Any]:
    raw = two_key_page()
    raw["NextPageToken"] = "t-2"
    return raw


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """The good page with one member (a dotted path; ``-`` deletes) changed."""
    raw = _one_good_page()
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value == "-":
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return raw


_DECLINED: list[tuple[str, Any]] = [
    ("key count", _mutate("ResultsByTime.0.Groups.1.Keys", ["Amazon DynamoDB"])),
    ("tag prefix", _mutate("ResultsByTime.0.Groups.1.Keys.1", "team$x")),
    ("key not a string", _mutate("ResultsByTime.0.Groups.1.Keys.0", 7)),
    ("number amount", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Amount", 1.5)),
    ("exponent amount", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Amount", "1.5E-7")),
    ("leading zero", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Amount", "01.5")),
    ("NaN", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Amount", "NaN")),
    ("extra metric", _mutate("ResultsByTime.0.Groups.1.Metrics.BlendedCost", {"Amount": "1", "Unit": "USD"})),
    ("other metric", _mutate("ResultsByTime.0.Groups.1.Metrics", {"BlendedCost": {"Amount": "1", "Unit": "USD"}})),
    ("no unit", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Unit", "-")),
    ("empty unit", _mutate("ResultsByTime.0.Groups.1.Metrics.UnblendedCost.Unit", "")),
    ("group not an object", _mutate("ResultsByTime.0.Groups.1", "garbage")),
    ("null Estimated", _mutate("ResultsByTime.0.Estimated", None)),
    ("bad date", _mutate("ResultsByTime.0.TimePeriod.Start", "2026-02-30")),
    ("no period", _mutate("ResultsByTime.0.TimePeriod", "-")),
    ("Total-only", _mutate("ResultsByTime.0.Groups", [])
     | {"ResultsByTime": [{"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"}, "Groups": [],
                           "Total": {"UnblendedCost": {"Amount": "3", "Unit": "USD"}}, "Estimated": False}]}),
    ("other grouping", _mutate("GroupDefinitions.1.Key", "team")),
    ("empty token", _mutate("NextPageToken", "")),
    ("ResultsByTime not a list", _mutate("ResultsByTime", {})),
]


@pytest.mark.parametrize(("label", "raw"), _DECLINED, ids=[d[0] for d in _DECLINED])
def test_the_typed_decode_declines_what_the_general_path_must_judge(label: str, raw: dict[str, Any]) -> None:
    """Every page the general path would quarantine a group of, refuse, or read as a Total-only record is left
    to it (the decoder answers None), so every reason and raw payload stays the general path's."""
    from dbcost.parse import fast_decoder

    decode = fast_decoder(two_key_page()["GroupDefinitions"], ["UnblendedCost"], "DAILY")
    assert decode(json.dumps(_one_good_page()).encode()) is not None  # the page before the change is decoded
    assert decode(json.dumps(raw).encode()) is None


@pytest.mark.parametrize("body", [b"", b"<html>proxy</html>", b'{"ResultsByTime": [', b"[]", b'"\\ud800"',
                                  b"\xff\xfe"])
def test_the_typed_decode_declines_a_body_that_is_not_a_page(body: bytes) -> None:
    """A body that is not JSON, not an object or not UTF-8 is never decoded (and never raises): the transport's
    general path then refuses it as before."""
    from dbcost.parse import fast_decoder

    assert fast_decoder(_TWO_KEYS, ["UnblendedCost"], "DAILY")(body) is None


def test_the_typed_decode_covers_one_metric_and_one_or_two_keys_only() -> None:
    """Several metrics, no GroupBy or an invalid GroupBy: no typed decoder; one key, a dimension pair: one."""
    from dbcost.parse import fast_decoder

    assert fast_decoder(_TWO_KEYS, ["UnblendedCost", "UsageQuantity"], "DAILY") is None
    assert fast_decoder([], ["UnblendedCost"], "DAILY") is None
    assert fast_decoder([{"Type": "NOPE", "Key": "x"}], ["UnblendedCost"], "DAILY") is None
    one = [{"Type": "DIMENSION", "Key": "SERVICE"}]
    raw = load("02_groupby_service_monthly_cloudscape_excerpt.json")
    metric = next(iter(raw["ResultsByTime"][0]["Groups"][0]["Metrics"]))
    fast = fast_decoder(one, [metric], "DAILY")(json.dumps(raw).encode())
    columns, quarantined, _ = _columns_of_parse(raw, one, metric)
    assert fast is not None and fast.columns == columns and columns.groups > 0 and quarantined == []


@given(results=st.lists(_RESULT, max_size=4), one_key=st.booleans())
def test_columns_write_the_jsonl_their_records_write(results: list[dict[str, Any]], one_key: bool) -> None:
    """``PageColumns.jsonl`` is byte for byte the JSONL of the records the columns hold (dbcost fetch's
    output), whatever mix of fast, slow-path and Total-only records the page has, with one key or two."""
    import orjson

    if one_key:  # the same groups, their first key alone
        results = copy.deepcopy(results)
        for result in results:
            for group in result.get("Groups") or []:
                if isinstance(group, dict) and isinstance(group.get("Keys"), list):
                    group["Keys"] = group["Keys"][:1]
    raw = {"GroupDefinitions": _TWO_KEYS[:1] if one_key else _TWO_KEYS, "ResultsByTime": results}
    page = parse_page(copy.deepcopy(raw), granularity="DAILY", metrics=["UnblendedCost"], columnar=True)
    assert page.columns is not None
    text = page.columns.jsonl()
    assert text == b"".join(orjson.dumps(r.to_json()) + b"\n" for r in page.records)
