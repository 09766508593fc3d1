"""Pools: who owns a cluster's spend.

Precedence, first match wins (documented in README):

1. the team tag on the cluster's spend (``--team-tag``, default ``team``); if a cluster carries several
   team values in one month (it was re-tagged), the value carrying most of its spend owns the month;
2. the topology file's row for the cluster (CSV or YAML: ``cluster, team, env, owner``);
3. nobody: the spend goes to the explicit ``unattributed`` pool, shown in every report and never spread
   unless ``--allocate-shared`` is asked for.

Spend without a cluster tag at all (``db-cluster$``) has no cluster and is unattributed.

The topology file may also map accounts to business units (``account, business_unit``) for reporting.
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

__all__ = ["ClusterInfo", "Topology", "load_topology", "resolve_teams"]


@dataclass(frozen=True)
class ClusterInfo:
    cluster: str
    team: str
    env: str = ""
    owner: str = ""


@dataclass(frozen=True)
class Topology:
    clusters: dict[str, ClusterInfo] = field(default_factory=dict)
    business_units: dict[str, str] = field(default_factory=dict)  # account id -> business unit

    def team_of(self, cluster: str) -> str | None:
        info = self.clusters.get(cluster)
        return info.team if info is not None and info.team else None


def _rows_from_yaml(text: str, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, list):
        return data, []
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'clusters' (and optional 'accounts') or a list")
    clusters, accounts = data.get("clusters", []), data.get("accounts", [])
    if not isinstance(clusters, list) or not isinstance(accounts, list):
        raise ConfigError(f"{where}: 'clusters' and 'accounts' must be lists")
    return clusters, accounts


def load_topology(path: str | Path) -> Topology:
    """Read a topology file (``.csv`` with a header row, or ``.yaml``/``.yml``)."""
    p = Path(path)
    where = f"--topology {p}"
    text = read_text_file(p, where)
    if p.suffix.lower() in (".yaml", ".yml"):
        cluster_rows, account_rows = _rows_from_yaml(text, where)
    else:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not ({"cluster", "account"} & set(reader.fieldnames)):
            raise ConfigError(f"{where}: the CSV header needs a 'cluster' column (cluster,team,env,owner)")
        cluster_rows, account_rows = [], []
        for row in reader:
            (cluster_rows if (row.get("cluster") or "").strip() else account_rows).append(row)
    clusters: dict[str, ClusterInfo] = {}
    for i, row in enumerate(cluster_rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: cluster entry #{i} is not a mapping")
        unknown = set(row) - {"cluster", "team", "env", "owner", "account", "business_unit"}
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
    return Topology(clusters, units)


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
