"""Operational metrics in Prometheus text format, for node_exporter's textfile collector.

Written after every backfill/sync (``--metrics-file PATH``) from what the store recorded, atomically
(temp file + rename, as the textfile collector requires), on every way a run ends: done, failed, stopped by
a cap or a signal. A run that failed records its outcome first, so ``dbcost_run_ok`` is 0 after it (never
the previous run's 1). A file that cannot be written is one :class:`~dbcost.errors.OutputError` line naming
it; nothing of it is left half-written. Gauges describe the latest run of each
command per target; ``dbcost_last_success_timestamp_seconds`` says when each (target, dataset) last
completed a unit, which is what an alert on staleness needs.
"""

from __future__ import annotations

from pathlib import Path

from dbcost._files import write_text_atomic
from dbcost.errors import OutputError
from dbcost.store import RunStatus, Store

__all__ = ["render_metrics", "write_metrics_file"]

_RUN_GAUGES = (
    ("requests", "Cost Explorer requests sent (every attempt) in the latest run"),
    ("billed_requests", "Successful Cost Explorer requests ($0.01 each) in the latest run"),
    ("retries", "Retried attempts in the latest run"),
    ("throttled", "Throttled attempts (LimitExceededException) in the latest run"),
    ("pages", "Pages fetched in the latest run"),
    ("records", "Records parsed in the latest run"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(store: Store) -> str:
    lines: list[str] = []
    latest = store.latest_runs()
    per_target: list[tuple[str, str, dict[str, object]]] = []
    for command, _run_id, _status, stats, _ts in latest:
        for target, tstats in (stats.get("targets") or {}).items():
            per_target.append((command, target, tstats))
    for name, help_text in _RUN_GAUGES:
        lines.append(f"# HELP dbcost_{name} {help_text}.")
        lines.append(f"# TYPE dbcost_{name} gauge")
        for command, target, tstats in per_target:
            lines.append(f'dbcost_{name}{{command="{_label(command)}",target="{_label(target)}"}} {tstats.get(name, 0)}')
    lines.append("# HELP dbcost_cost_usd Dollars spent on Cost Explorer requests in the latest run.")
    lines.append("# TYPE dbcost_cost_usd gauge")
    for command, target, tstats in per_target:
        lines.append(f'dbcost_cost_usd{{command="{_label(command)}",target="{_label(target)}"}} {tstats.get("cost_usd", 0)}')
    lines.append("# HELP dbcost_quarantined Groups quarantined by the latest run.")
    lines.append("# TYPE dbcost_quarantined gauge")
    lines.append("# HELP dbcost_run_ok 1 when the latest run of the command completed, else 0.")
    lines.append("# TYPE dbcost_run_ok gauge")
    for command, _run_id, status, stats, _ts in latest:
        lines.append(f'dbcost_quarantined{{command="{_label(command)}"}} {stats.get("quarantined", 0)}')
        lines.append(f'dbcost_run_ok{{command="{_label(command)}"}} {1 if status == RunStatus.DONE else 0}')
    lines.append("# HELP dbcost_last_success_timestamp_seconds When a unit of this target and dataset last completed.")
    lines.append("# TYPE dbcost_last_success_timestamp_seconds gauge")
    for target, dataset, ts in store.last_successes():
        lines.append(f'dbcost_last_success_timestamp_seconds{{target="{_label(target)}",dataset="{_label(dataset)}"}} '
                     f"{float(ts):.0f}")
    lines.append("# HELP dbcost_stored_records Records (rows per metric) held in the store.")
    lines.append("# TYPE dbcost_stored_records gauge")
    lines.append(f"dbcost_stored_records {store.record_count()}")
    return "\n".join(lines) + "\n"


def write_metrics_file(path: str | Path, db: str | Path) -> None:
    """Render the store's metrics into ``path`` atomically (mode 0644, for node_exporter)."""
    target = Path(path)
    with Store(db, read_only=True) as store:
        text = render_metrics(store)
    try:
        write_text_atomic(target, text, mode=0o644)  # world-readable: node_exporter runs as another user
    except OSError as exc:
        raise OutputError(f"--metrics-file {target}: cannot write: {exc.strerror or exc}") from exc
