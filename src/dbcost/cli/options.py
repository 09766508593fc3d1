"""The options several commands share, and the helpers that turn options into library objects.

An alias here is one ``--flag`` with one help text wherever it appears; a command whose flag means
something else (``attribute --metric`` takes one metric, ``fetch --metric`` many) declares its own. The
builders raise :class:`~dbcost.errors.UsageError` (or ``ValueError`` from date parsing) for every problem,
before anything is sent; the command turns that into exit 2.

Every exit-2 check happens here, before any request, any file or any run row: the endpoint and region, the
range against today (:func:`dbcost.plan.check_range`), the plan and its cap (:func:`dbcost.jobs.backfill.
check_run`), a file sink whose path cannot work, a ``--metrics-file`` or output in a directory that does not
exist. Limits: ``--max-requests``/``--max-cost-usd`` unset means the Settings default limit; ``0`` (said
explicitly) means no limit.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

import dbcost
import dbcost._files
import dbcost.defaults
import dbcost.errors
import dbcost.governor
from dbcost.cli.app import UsageError, configured

if TYPE_CHECKING:  # the builders import what they build with when called: a command pays for its own use-case only
    import dbcost.plan

__all__ = [
    "AllocateOpt",
    "ChainPagesOpt",
    "ClusterTagOpt",
    "DbOpt",
    "EndOpt",
    "EndpointOpt",
    "FilterOpt",
    "FormatOpt",
    "GranularityOpt",
    "GroupByOpt",
    "JsonOpt",
    "MaxConcOpt",
    "MaxReqOpt",
    "MaxRpsOpt",
    "MetricOneOpt",
    "MetricOpt",
    "MetricsFileOpt",
    "MonthOpt",
    "OutputOpt",
    "ProfileOpt",
    "RegionOpt",
    "RequestTimeoutOpt",
    "RetryBudgetOpt",
    "ShardCountOpt",
    "ShardIndexEnvOpt",
    "ShardOpt",
    "SinkOpt",
    "StartOpt",
    "StrictOpt",
    "TableFormat",
    "TargetsOpt",
    "TeamTagOpt",
    "TodayOpt",
    "TopologyOpt",
    "WindowOpt",
    "attribute_spec",
    "check_metrics_file",
    "check_output",
    "check_sinks",
    "load_filter",
    "run_spec",
    "settings_for",
    "shard_for",
]

# ----------------------------------------------------------------------------------- the query, one call

StartOpt = Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD (inclusive).")]
EndOpt = Annotated[str, typer.Option("--end", help="Day after the last, YYYY-MM-DD (exclusive, as in the API).")]
Granularity = Literal["DAILY", "MONTHLY", "HOURLY"]
GranularityOpt = Annotated[
    Granularity, typer.Option("--granularity", case_sensitive=False, help="HOURLY: the last 14 days only.")
]
MetricOpt = Annotated[
    list[str] | None,
    typer.Option("--metric", help="Metric to fetch; repeatable. Default UnblendedCost. E.g. AmortizedCost."),
]
GroupByOpt = Annotated[
    list[str] | None,
    typer.Option("--group-by", help="SERVICE, USAGE_TYPE, LINKED_ACCOUNT, ... or TAG:KEY; at most two."),
]
FilterOpt = Annotated[
    str | None, typer.Option("--filter", help="Cost Explorer Filter expression as JSON, or @file.json.")
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Cost Explorer endpoint (default: the environment's, see dbcost --help; else the public one).",
    ),
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: AWS_PROFILE / chain).")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Signing region (default: profile's, else us-east-1).")]
MaxRpsOpt = Annotated[
    float, typer.Option("--max-rps", help="Requests per second to Cost Explorer (adaptive below this).", min=0.01)
]
MaxConcOpt = Annotated[int, typer.Option("--max-concurrency", help="Requests in flight at most.", min=1)]
MaxReqOpt = Annotated[
    int | None,
    typer.Option("--max-requests", min=0,
                 help=f"Stop before sending more than N requests ($0.01 each; every attempt counts). Default "
                      f"{dbcost.defaults.DEFAULT_MAX_REQUESTS} per run; 0 = no limit."),
]
ChainPagesOpt = Annotated[
    int | None,
    typer.Option("--max-pages-per-chain", min=0,
                 help=f"Stop a page chain (one unit, or a whole fetch) after N pages. Default "
                      f"{dbcost.defaults.DEFAULT_MAX_CHAIN_PAGES}; 0 = no limit."),
]
RequestTimeoutOpt = Annotated[
    float,
    typer.Option("--request-timeout-s",
                 help="Seconds one request may take, connect to the last byte of the answer (a wall-clock "
                      "deadline; a server trickling its answer cannot extend it)."),
]
RetryBudgetOpt = Annotated[
    float,
    typer.Option("--retry-budget-s",
                 help="Seconds one call may take, every retry and backoff included (a wall-clock deadline)."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 3 if any group was quarantined.")]
SinkOpt = Annotated[
    list[str] | None,
    typer.Option("--sink", help="Also send records to: jsonl:PATH, parquet:DIR, kafka[+ssl]://H:P/TOPIC, "
                                "kinesis://STREAM, postgresql://USER@H:P/DB, s3://BUCKET/PREFIX. Repeatable. "
                                "Kafka ?options: idempotence compression batch_size timeout_ms retries backoff_ms "
                                "retry_budget_s create_topics partitions replication status_topic client_id "
                                "security_protocol cafile certfile keyfile check_hostname sasl_mechanism (PLAIN, "
                                "SCRAM-SHA-256/512, OAUTHBEARER, AWS_MSK_IAM) password_file region profile role_arn "
                                "external_id; the SASL user and password come from DBCOST_KAFKA_USERNAME and "
                                "DBCOST_KAFKA_PASSWORD (README: Sinks)."),
]

# ------------------------------------------------------------------------------------ runs into the store

DbOpt = Annotated[str, typer.Option("--db", help="The DuckDB store file.")]
TargetsOpt = Annotated[
    str | None,
    typer.Option("--targets", help="TOML/YAML file of payer targets (name, profile or role_arn, max_rps, ...)."),
]
ShardOpt = Annotated[
    str | None,
    typer.Option("--shard", envvar="DBCOST_SHARD", help="K/N: run the K-th of N disjoint shares of the units."),
]
ShardIndexEnvOpt = Annotated[
    str | None,
    typer.Option("--shard-index-env", metavar="NAME",
                 help="Take the shard from environment variable NAME, a 0-based index (a Kubernetes indexed "
                      "Job's JOB_COMPLETION_INDEX); needs --shard-count."),
]
ShardCountOpt = Annotated[
    int | None, typer.Option("--shard-count", min=1, help="N, the number of shards, with --shard-index-env.")
]
Window = Literal["auto", "month", "semimonth", "week", "day"]
WindowOpt = Annotated[Window, typer.Option("--window", case_sensitive=False, help="The unit's window.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="The same as --format json.")]
TodayOpt = Annotated[str | None, typer.Option("--today", hidden=True, help="Pretend today is this date (tests).")]
MetricsFileOpt = Annotated[
    str | None,
    typer.Option("--metrics-file", help="Write Prometheus text-format metrics here (node_exporter textfile)."),
]

# --------------------------------------------------------------------------- attribution, quota, report

MonthOpt = Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")]
TableFormat = Literal["table", "json", "csv"]
FormatOpt = Annotated[
    TableFormat,
    typer.Option("--format", case_sensitive=False,
                 help="table to read (fits a terminal; full width in a file or pipe), json or csv to parse "
                      "(exact amounts)."),
]
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help="Write the result to this file (atomically); - is stdout.")
]
ClusterTagOpt = Annotated[str, typer.Option("--cluster-tag", help="Tag key naming the cluster.")]
TeamTagOpt = Annotated[str, typer.Option("--team-tag", help="Tag key naming the owning team.")]
TopologyOpt = Annotated[
    str | None,
    typer.Option("--topology", help="CSV/YAML for clusters or resources whose tags are missing: cluster, team, "
                                    "env, owner (or resource_id, cluster, team, env, owner)."),
]
AllocateOpt = Annotated[
    bool, typer.Option("--allocate-shared", help="Spread unattributed spend over teams by account and service.")
]
MetricOneOpt = Annotated[str, typer.Option("--metric", help="Cost metric the attribution was built with.")]


def load_filter(text: str | None) -> str | None:
    """``--filter`` takes JSON, or ``@path`` to a JSON file."""
    if text is None or not text.startswith("@"):
        return text
    return dbcost._files.read_text_file(text[1:], f"filter {text[1:]}")


def shard_for(shard: str | None, index_env: str | None = None, count: int | None = None) -> dbcost.plan.Shard | None:
    """The run's shard: ``--shard K/N`` (or ``DBCOST_SHARD``), or ``--shard-index-env NAME --shard-count N``,
    whose variable holds a 0-based index (shard ``index + 1`` of N). Giving both forms, or one of the pair
    alone, is a UsageError; so is an index that is not a number below N."""
    import dbcost.plan

    if index_env is None and count is None:
        try:
            return dbcost.plan.parse_shard(shard)
        except UsageError as exc:
            if shard is not None and os.environ.get("DBCOST_SHARD") == shard:
                raise UsageError(f"{exc} (from DBCOST_SHARD)") from None
            raise
    if index_env is None or count is None:
        raise UsageError("--shard-index-env and --shard-count: give both (the variable holds a 0-based index)")
    if shard is not None:
        raise UsageError("--shard (or DBCOST_SHARD) and --shard-index-env: give one of them, not both")
    raw = os.environ.get(index_env)
    if raw is None or not raw.strip():
        raise UsageError(f"--shard-index-env {index_env}: the environment variable is not set")
    try:
        index = int(raw.strip())
    except ValueError:
        raise UsageError(f"--shard-index-env {index_env}: {raw!r} is not a 0-based index") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard-index-env {index_env}: index {index} is not between 0 and --shard-count - 1 "
                         f"({count - 1})")
    return dbcost.plan.Shard(index + 1, count)


def _one_target_description(targets: str | None, endpoint_url: str | None, profile: str | None,
                            region: str | None) -> tuple[str | None, str | None, str | None, str | None]:
    """``--targets`` and ``--endpoint-url/--profile/--region`` describe the targets two exclusive ways. When
    one way comes from the command line and the other only from the configuration, the command line's
    replaces it (a flag beats the configuration); both given the same way stays an error (load_settings)."""
    singles = {"endpoint_url": endpoint_url, "profile": profile, "region": region}
    given = [n for n, v in singles.items() if v]
    if not targets or not given:
        return targets, endpoint_url, profile, region
    if configured("targets", targets) and not all(configured(n, singles[n]) for n in given):
        return None, endpoint_url, profile, region
    if not configured("targets", targets):
        kept = {n: (None if configured(n, v) else v) for n, v in singles.items()}
        return targets, kept["endpoint_url"], kept["profile"], kept["region"]
    return targets, endpoint_url, profile, region


def settings_for(*, targets: str | None, endpoint_url: str | None, profile: str | None, region: str | None,
                 db: str = str(dbcost.defaults.DEFAULT_DB), max_rps: float = dbcost.governor.DEFAULT_MAX_RPS,
                 max_concurrency: int = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
                 sinks: list[str] | None = None,
                 request_timeout_s: float = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
                 retry_budget_s: float = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
                 max_requests: int | None = None, max_cost_usd: float | None = None,
                 max_chain_pages: int | None = None) -> dbcost.Settings:
    """``--targets FILE`` or the one target the command line describes (never both), the store, the rate, the
    limits and the sinks: the same :class:`dbcost.Settings` a library caller builds
    (:func:`dbcost.config.load_settings`). ``--max-requests``/``--max-cost-usd`` given (0 included) replace
    the default run limit; ``--max-pages-per-chain 0`` lifts the chain limit."""
    import dbcost.config

    targets, endpoint_url, profile, region = _one_target_description(targets, endpoint_url, profile, region)
    explicit_cap = max_requests is not None or max_cost_usd is not None
    if max_cost_usd is not None and max_cost_usd < 0:
        raise UsageError(f"--max-cost-usd: must be 0 (no limit) or more, got {max_cost_usd:g}")
    run_cap = (max_requests or None) if explicit_cap else dbcost.defaults.DEFAULT_MAX_REQUESTS
    chain = dbcost.defaults.DEFAULT_MAX_CHAIN_PAGES if max_chain_pages is None else (max_chain_pages or None)
    return dbcost.config.load_settings(targets_file=targets, endpoint_url=endpoint_url, profile=profile,
                                       region=region, db=db, max_rps=max_rps, max_concurrency=max_concurrency,
                                       sinks=tuple(sinks or ()), request_timeout_s=request_timeout_s,
                                       retry_budget_s=retry_budget_s, max_requests=run_cap,
                                       max_chain_pages=chain)


def check_metrics_file(path: str | None, option: str = "--metrics-file") -> None:
    """A file written at the end of a run must be writable before the run spends anything: its directory must
    exist and it must not be a directory."""
    if path is None:
        return
    p = Path(path)
    if not p.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {p.parent} does not exist")
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a directory")


def check_output(path: str) -> None:
    """``--output PATH``: its directory exists and it is not a directory (``-`` is stdout)."""
    if path != "-":
        check_metrics_file(path, "--output")


def check_sinks(urls: list[str] | tuple[str, ...]) -> None:
    """Every ``--sink`` URL parsed (its own grammar), and a file sink's path checked as its open would: a run
    must not begin (a store file, a run row) for a sink that cannot work."""
    import dbcost.sinks

    for url in urls:
        options = dbcost.sinks.parse_sink_url(url)
        shown = dbcost.sinks.redact_url(url)
        path = getattr(options, "path", None)
        if isinstance(path, Path):
            if path.is_dir():
                raise UsageError(f"--sink {shown}: {path} is a directory")
            if not path.parent.is_dir():
                raise UsageError(f"--sink {shown}: directory {path.parent} does not exist")
        folder = getattr(options, "dir", None)
        if isinstance(folder, Path):
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"--sink {shown}: {folder} exists and is not a directory")
            for parent in folder.parents:
                if parent.exists():
                    if not parent.is_dir():
                        raise UsageError(f"--sink {shown}: {parent} is not a directory")
                    break


def _refuse_a_future_start(start: str | None, today: dt.date) -> None:
    """``--start`` after today is refused as such (not as an end before the start, with the default end)."""
    try:
        first = dt.date.fromisoformat(start) if start else None
    except ValueError:
        return  # the query's own validation words a malformed date
    if first is not None and first > today:
        raise UsageError(f"--start {first}: is in the future (today is {today}, UTC); Cost Explorer has no data "
                         "for it yet")


def run_spec(
    *, command: str, start: str | None, end: str | None, granularity: str, metric: list[str] | None,
    group_by: list[str] | None, filter_: str | None, targets: str | None, endpoint_url: str | None,
    profile: str | None, region: str | None, db: str, resume: bool, shard: str | None,
    max_requests: int | None, max_cost_usd: float | None, max_rps: float, max_concurrency: int,
    sinks: list[str] | None, window: str, today: str | None,
    shard_index_env: str | None = None, shard_count: int | None = None,
    request_timeout_s: float = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: float = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    max_chain_pages: int | None = None, metrics_file: str | None = None,
) -> dbcost.RunSpec:
    """Options -> a validated RunSpec; every problem is a UsageError (exit 2, nothing sent, nothing written).
    The plan itself is checked by the command once its window is known (:func:`dbcost.jobs.backfill.check_run`)."""
    import dbcost.sinks

    day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    _refuse_a_future_start(start, day)
    # sync computes its own range from the store: it builds the query on a placeholder window first
    query = dbcost.CostQuery.build(
        start=start or (day - dt.timedelta(days=1)).isoformat(), end=end or day.isoformat(),
        granularity=granularity, metrics=metric or ["UnblendedCost"], group_by=group_by or [],
        filter=load_filter(filter_),
    )
    if window not in ("auto", "month", "semimonth", "week", "day"):
        raise UsageError(f"--window: must be auto, month, semimonth, week or day, got {window!r}")
    settings = settings_for(targets=targets, endpoint_url=endpoint_url, profile=profile, region=region, db=db,
                            max_rps=max_rps, max_concurrency=max_concurrency, sinks=sinks,
                            request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s,
                            max_requests=max_requests, max_cost_usd=max_cost_usd, max_chain_pages=max_chain_pages)
    check_sinks(settings.sinks)
    check_metrics_file(metrics_file)
    shard_of = shard_for(shard, shard_index_env, shard_count)
    spec = dbcost.RunSpec(
        query=query, settings=settings, command=command, today=day,
        window=window,  # type: ignore[arg-type]  # checked above
        shard=shard_of, resume=resume, max_requests=max_requests or None,
        max_cost_usd=Decimal(str(max_cost_usd)) if max_cost_usd else None,
        sink_context=dbcost.sinks.SinkContext(region=region, profile=profile),  # never the CE endpoint
    )
    return spec


def attribute_spec(
    *, month: str, db: str, metric: str, cluster_tag: str, team_tag: str, topology: str | None,
    allocate_shared: bool, endpoint_url: str | None, profile: str | None, region: str | None,
    targets: str | None, today: str | None,
    request_timeout_s: float = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: float = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
) -> dbcost.AttributeSpec:
    """Options -> the AttributeSpec that ``quota check`` and ``report`` read the store with."""
    import dbcost.attribution.pools
    import dbcost.jobs.attribute

    day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    dbcost.jobs.attribute.month_range(month, day)
    return dbcost.AttributeSpec(
        month=month, settings=settings_for(targets=targets, endpoint_url=endpoint_url, profile=profile,
                                           region=region, db=db, request_timeout_s=request_timeout_s,
                                           retry_budget_s=retry_budget_s),
        metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
        topology=dbcost.attribution.pools.load_topology(topology) if topology else None,
        allocate_shared=allocate_shared, today=day,
    )
