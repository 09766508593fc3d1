"""Pools: who owns a cluster's spend.

Precedence, first match wins (documented in README):

1. the team tag on the cluster's spend (``--team-tag``, default ``team``); if a cluster carries several
   team values in one month (it was re-tagged), the value carrying most of its spend owns the month;
2. the topology file's row for the cluster (CSV or YAML: ``cluster, team, env, owner``);
3. nobody: the spend goes to the explicit ``unattributed`` pool, shown in every report and never spread
   unless ``--allocate-shared`` is asked for.

Spend without a cluster tag at all (``db-cluster$``) has no cluster and is unattributed.

The topology file may also map accounts to business units (``account, business_unit``) for reporting, and
resources to their cluster and team (``resource_id, cluster, team[, env, owner]``: a resource id as Cost
Explorer's resource-level data names it, an ARN; ``cluster`` may be empty). Resource rows place resources in
``dbcost resources`` (:mod:`dbcost.attribution.resources`); the cluster-keyed rows keep working as before. In a
CSV, a row with a ``resource_id`` is a resource row, else a row with a ``cluster`` a cluster row, else an
account row; in YAML, ``resources:`` is a list beside ``clusters:`` and ``accounts:`` (or, in a bare list, an
entry with ``resource_id``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcost._files import read_text_file
from dbcost.errors import ConfigError

__all__ = ["ClusterInfo", "ResourceInfo", "Topology", "load_topology", "resolve_teams"]


@dataclass(frozen=True)
class ClusterInfo:
    cluster: str
    team: str
    env: str = ""
    owner: str = ""


@dataclass(frozen=True)
class ResourceInfo:
    """A topology row keyed by resource id (``cluster`` may be empty: the file knows the team only)."""

    resource_id: str
    cluster: str
    team: str
    env: str = ""
    owner: str = ""


@dataclass(frozen=True)
class Topology:
    clusters: dict[str, ClusterInfo] = field(default_factory=dict)
    business_units: dict[str, str] = field(default_factory=dict)  # account id -> business unit
    resources: dict[str, ResourceInfo] = field(default_factory=dict)  # resource id -> row

    def team_of(self, cluster: str) -> str | None:
        info = self.clusters.get(cluster)
        return info.team if info is not None and info.team else None


def _rows_from_yaml(text: str, where: str) -> tuple[list[Any], list[Any], list[Any]]:
    """(cluster rows, account rows, resource rows) of a YAML topology."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, list):
        resources = [r for r in data if isinstance(r, dict) and "resource_id" in r]
        return [r for r in data if not (isinstance(r, dict) and "resource_id" in r)], [], resources
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'clusters' (and optional 'accounts', 'resources') "
                          "or a list")
    clusters, accounts, resources = data.get("clusters", []), data.get("accounts", []), data.get("resources", [])
    if not isinstance(clusters, list) or not isinstance(accounts, list) or not isinstance(resources, list):
        raise ConfigError(f"{where}: 'clusters', 'accounts' and 'resources' must be lists")
    return clusters, accounts, resources


def load_topology(path: str | Path) -> Topology:
    """Read a topology file (``.csv`` with a header row, or ``.yaml``/``.yml``)."""
    p = Path(path)
    where = f"--topology {p}"
    text = read_text_file(p, where)
    resource_rows: list[Any]
    if p.suffix.lower() in (".yaml", ".yml"):
        cluster_rows, account_rows, resource_rows = _rows_from_yaml(text, where)
    else:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not ({"cluster", "account", "resource_id"} & set(reader.fieldnames)):
            raise ConfigError(f"{where}: the CSV header needs a 'cluster' column (cluster,team,env,owner) or a "
                              "'resource_id' column (resource_id,cluster,team,env,owner)")
        cluster_rows, account_rows, resource_rows = [], [], []
        for row in reader:
            if (row.get("resource_id") or "").strip():
                resource_rows.append(row)
            else:
                (cluster_rows if (row.get("cluster") or "").strip() else account_rows).append(row)
    clusters: dict[str, ClusterInfo] = {}
    for i, row in enumerate(cluster_rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: cluster entry #{i} is not a mapping")
        unknown = set(row) - {"cluster", "team", "env", "owner", "account", "business_unit", "resource_id"}
        if unknown:
            raise ConfigError(f"{where}: cluster entry #{i}: unknown field(s) {', '.join(sorted(unknown))}")
        name = str(row.get("cluster") or "").strip()
        team = str(row.get("team") or "").strip()
        if not name:
            raise ConfigError(f"{where}: cluster entry #{i}: 'cluster' is empty")
        if not team:
            raise ConfigError(f"{where}: cluster entry #{i} ({name}): 'team' is empty")
        if name in clusters and clusters[name].team != team:
            raise ConfigError(f"{where}: cluster {name} is listed twice with different teams")
        clusters[name] = ClusterInfo(name, team, str(row.get("env") or "").strip(), str(row.get("owner") or "").strip())
    units: dict[str, str] = {}
    for i, row in enumerate(account_rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: account entry #{i} is not a mapping")
        acct = str(row.get("account") or "").strip()
        bu = str(row.get("business_unit") or "").strip()
        if not acct or not bu:
            raise ConfigError(f"{where}: account entry #{i}: needs 'account' and 'business_unit'")
        units[acct] = bu
    return Topology(clusters, units, _resource_rows(resource_rows, where))


def _resource_rows(rows: list[Any], where: str) -> dict[str, ResourceInfo]:
    out: dict[str, ResourceInfo] = {}
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: resource entry #{i} is not a mapping")
        unknown = set(row) - {"resource_id", "cluster", "team", "env", "owner", "account", "business_unit"}
        if unknown:
            raise ConfigError(f"{where}: resource entry #{i}: unknown field(s) {', '.join(sorted(unknown))}")
        rid = str(row.get("resource_id") or "").strip()
        team = str(row.get("team") or "").strip()
        if not rid:
            raise ConfigError(f"{where}: resource entry #{i}: 'resource_id' is empty")
        if not team:
            raise ConfigError(f"{where}: resource entry #{i} ({rid}): 'team' is empty")
        info = ResourceInfo(rid, str(row.get("cluster") or "").strip(), team, str(row.get("env") or "").strip(),
                            str(row.get("owner") or "").strip())
        if rid in out and out[rid] != info:
            raise ConfigError(f"{where}: resource {rid} is listed twice with different rows")
        out[rid] = info
    return out


def resolve_teams(
    tag_spend: Iterable[tuple[str, str, Decimal]], topology: Topology | None
) -> dict[str, tuple[str | None, str]]:
    """cluster -> (team or None, source) from (cluster, team tag value, amount) rows of one month.

    The team tag value with the most spend wins (ties: alphabetical, for determinism); clusters without a
    team tag fall back to the topology; otherwise (None, "none").
    """
    best: dict[str, dict[str, Decimal]] = {}
    for cluster, team, amount in tag_spend:
        if not cluster:
            continue
        best.setdefault(cluster, {})
        if team:
            best[cluster][team] = best[cluster].get(team, Decimal(0)) + amount
    out: dict[str, tuple[str | None, str]] = {}
    for cluster, teams in best.items():
        if teams:
            team = sorted(teams.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            out[cluster] = (team, "tag")
        elif topology is not None and topology.team_of(cluster):
            out[cluster] = (topology.team_of(cluster), "topology")
        else:
            out[cluster] = (None, "none")
    if topology is not None:
        for cluster in topology.clusters:
            out.setdefault(cluster, (topology.team_of(cluster), "topology"))
    return out


def owners(resolved: Mapping[str, tuple[str | None, str]], cluster: str, topology: Topology | None) -> tuple[
        str | None, str]:
    """The (team, source) of ``cluster`` ('' = untagged: nobody)."""
    if not cluster:
        return None, "none"
    if cluster in resolved:
        return resolved[cluster]
    if topology is not None and topology.team_of(cluster):
        return topology.team_of(cluster), "topology"
    return None, "none"
