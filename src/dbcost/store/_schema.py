"""The store's schema, as a list of numbered migrations, and the status values its tables hold.

A store file records its ``schema_version`` in ``meta``. Opening a store brings it to :data:`SCHEMA_VERSION`
by applying, in order, every step of :data:`MIGRATIONS` it has not had, all in one transaction with the new
version number: a failure leaves the file exactly as it was. A new store runs through the same steps from
version 0, so a fresh store and an upgraded one are the same schema by construction. A store newer than this
code is refused with one line (its meaning may have changed under us); that is checked read-only too.

To change the schema, append a :class:`Migration` (never edit a released one: files in the field were made
by it) and keep ``tests/data/store-v<N>.duckdb`` fixtures opening (``tests/store/test_migrations.py``).

Versions:
  1. the first release: datasets, records, staging, quarantine, runs, units, changes, quota_state, meta
  2. ``datasets.operation``: the Cost Explorer operation the dataset's query calls (GetCostAndUsage before)
  3. ``advisories``: ``dbcost advise``'s state, one row per advisory identity (first seen, resolved, version)
  4. ``inventory``: the databases as their own APIs last described them (``--inventory``), one row per target
     and ARN, with the time it was read (issue 11; the lead may renumber it at merge)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dbcost.errors import StoreError
from dbcost.store._db import Database

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "RunStatus", "UnitStatus", "check_not_newer", "migrate",
           "stored_version"]


class RunStatus(StrEnum):
    """``runs.status``; also a run outcome's status (``dbcost backfill --json`` prints it)."""

    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"  # a request cap was reached; ``--resume`` continues
    INCOMPLETE = "incomplete"  # a target or a unit failed
    REFUSED = "refused"  # the plan needed more requests than the cap; nothing was sent
    ABANDONED = "abandoned"  # superseded by a fresh run of the same plan: no longer resumable


class UnitStatus(StrEnum):
    """``units.status``: running (pages staged) -> committed (in the store) -> done (every sink has it)."""

    RUNNING = "running"
    COMMITTED = "committed"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Migration:
    """One schema step: the version it brings a store to, and its statements."""

    version: int
    why: str
    statements: tuple[str, ...]


# IF NOT EXISTS: a file from before schema versioning may hold some of these tables already
_V1 = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY,
    granularity VARCHAR NOT NULL,
    metrics VARCHAR[] NOT NULL,
    key1_name VARCHAR,
    key2_name VARCHAR,
    query JSON NOT NULL,
    label VARCHAR,
    created_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS records (
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    period_start VARCHAR NOT NULL,
    period_end VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    amount DECIMAL(38,10) NOT NULL,
    amount_text VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    estimated BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    run_id VARCHAR NOT NULL,
    fetched_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS staging (
    unit_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    period_start VARCHAR NOT NULL,
    period_end VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    amount_text VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    estimated BOOLEAN NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS staging_quarantine (
    unit_id VARCHAR NOT NULL,
    period_start VARCHAR,
    period_end VARCHAR,
    page INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    raw JSON
)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    window_start DATE NOT NULL,
    window_end DATE NOT NULL,
    period_start VARCHAR,
    period_end VARCHAR,
    page INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    raw JSON,
    run_id VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR NOT NULL,
    plan_id VARCHAR,
    version BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL,
    args JSON,
    stats JSON,
    incomplete_targets VARCHAR[]
)""",
    """CREATE TABLE IF NOT EXISTS units (
    run_id VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    window_start DATE NOT NULL,
    window_end DATE NOT NULL,
    status VARCHAR NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    next_token VARCHAR,
    records BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    changed BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    error VARCHAR,
    updated_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS changes (
    run_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    period_start VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    old_amount DECIMAL(38,10),
    new_amount DECIMAL(38,10),
    changed_at TIMESTAMP NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS quota_state (
    pool VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    detail JSON,
    changed_at TIMESTAMP NOT NULL
)""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the first schema", _V1),
    Migration(2, "datasets.operation: the Cost Explorer operation a dataset's query calls", (
        # every dataset of a v1 store was a GetCostAndUsage query: the default is exact for them
        "ALTER TABLE datasets ADD COLUMN operation VARCHAR NOT NULL DEFAULT 'GetCostAndUsage'",
    )),
    Migration(3, "advisories: the state of dbcost advise (first seen, resolved at, version per advisory)", (
        # amounts as exact decimal strings: a formula's result may carry more places than DECIMAL(38,10) keeps
        """CREATE TABLE IF NOT EXISTS advisories (
    scope VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    cluster VARCHAR NOT NULL,
    team VARCHAR NOT NULL,
    service VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    monthly_cost VARCHAR NOT NULL,
    estimated_monthly_savings VARCHAR NOT NULL,
    payload JSON NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, id)
)""",
    )),
    Migration(4, "inventory: the databases as their own APIs last described them, with the time each was read", (
        # one reading per (target, service, region) scope: a new reading of a scope replaces all its rows
        """CREATE TABLE IF NOT EXISTS inventory (
    target VARCHAR NOT NULL,
    arn VARCHAR NOT NULL,
    aliases VARCHAR[] NOT NULL,
    service VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    account VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    cluster VARCHAR,
    engine VARCHAR,
    engine_version VARCHAR,
    instance_class VARCHAR,
    multi_az BOOLEAN,
    tags JSON NOT NULL,
    read_at TIMESTAMP NOT NULL,
    PRIMARY KEY (target, arn)
)""",
    )),
)

#: the schema this code reads and writes
SCHEMA_VERSION = MIGRATIONS[-1].version


def stored_version(db: Database) -> int:
    """The file's schema version: 0 for an empty file (no ``meta`` table, or no version in it)."""
    has_meta = db.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND table_name = 'meta'"
    )
    if not has_meta:
        return 0
    value = db.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
    return int(value) if value is not None else 0


def check_not_newer(db: Database, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(f"{db.path}: store schema version {version} is newer than this dbcost ({SCHEMA_VERSION})")


def migrate(db: Database) -> int:
    """Bring the store to :data:`SCHEMA_VERSION` in one transaction; the version it had before."""
    with db.doing_as("upgrade schema"), db.transaction():
        before = stored_version(db)
        check_not_newer(db, before)
        for step in MIGRATIONS:
            if step.version > before:
                for statement in step.statements:
                    db.run(statement)
        if before < SCHEMA_VERSION:
            db.run("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   [str(SCHEMA_VERSION)])
    return before
