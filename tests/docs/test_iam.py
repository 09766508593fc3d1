"""docs/iam/*.json grant every AWS operation the code can call, and nothing it never calls.

The operations are found in the code, not listed here: the Cost Explorer operations table
(:data:`dbcost.operations.OPERATIONS`, what the client pages and calls), and, in every module of
``src/dbcost`` outside the emulator, each string literal that names an operation of an AWS service whose name
is also a string literal of that module (``AwsTransport(service="s3")`` with ``"PutObject"``,
``create_client("sts")`` with ``"AssumeRole"``, the inventory's ``("rds", "dynamodb", "elasticache")`` with
``"DescribeDBClusters"``...), checked against botocore's service models. A new call site is found the day it
is written; an operation named in a module that does not name its service is not, so name it there.

An operation's IAM action is ``<signing name>:<operation>``, except where AWS documents another mapping
(:data:`_ACTIONS`, S3's). Policies must be least privilege: explicit actions, no wildcards.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from dbcost.operations import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dbcost"
IAM = ROOT / "docs" / "iam"

#: operations whose IAM permission is not their own name (S3 API reference, "Permissions" of each operation)
_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),  # the source is read, the destination written
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
}
#: action prefixes granted to libraries dbcost hands its credentials to (AWS's MSK IAM signer), not to the
#: transport; they are not checked against call sites
_NOT_THROUGH_THE_TRANSPORT = ("kafka-cluster:",)


@cache
def _botocore() -> Any:
    return botocore.session.get_session()


@cache
def _services() -> frozenset[str]:
    return frozenset(_botocore().get_available_services())


@cache
def _model(service: str) -> Any:
    return _botocore().get_service_model(service)


def _scopes(tree: ast.Module) -> list[set[str]]:
    """The string literals of each scope: the module's own (outside every function) and each function's
    (outside the functions nested in it)."""
    scopes: list[set[str]] = []

    def visit(node: ast.AST, scope: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner: set[str] = set()
                scopes.append(inner)
                visit(child, inner)
            else:
                if isinstance(child, ast.Constant) and isinstance(child.value, str):
                    scope.add(child.value)
                visit(child, scope)

    module: set[str] = set()
    scopes.append(module)
    visit(tree, module)
    return scopes


def called_operations() -> set[tuple[str, str]]:
    """(service, operation) of every AWS call the code can make, found as described in the module doc.

    An operation name several of the module's services have (``ListTagsForResource``: RDS and ElastiCache) is
    given to the ones whose other operations the same function names, else to all of them."""
    found = {("ce", name) for name in OPERATIONS}
    for path in SRC.rglob("*.py"):
        if "emulator" in path.relative_to(SRC).parts:
            continue  # the emulator serves Cost Explorer; it calls nothing
        scopes = _scopes(ast.parse(path.read_text(encoding="utf-8")))
        services = set().union(*scopes) & _services()
        ops_of = {svc: set(_model(svc).operation_names) for svc in services}
        for scope in scopes:
            owners = {op: {svc for svc in services if op in ops_of[svc]} for op in scope}
            owners = {op: svcs for op, svcs in owners.items() if svcs}
            sure = {next(iter(svcs)) for svcs in owners.values() if len(svcs) == 1}
            for op, svcs in owners.items():
                found |= {(svc, op) for svc in (svcs & sure or svcs)}
    return found


def required_actions() -> dict[str, set[str]]:
    """IAM action -> the operations that need it."""
    need: dict[str, set[str]] = {}
    for service, op in sorted(called_operations()):
        prefix = _model(service).signing_name
        for action in _ACTIONS.get((service, op), (f"{prefix}:{op}",)):
            need.setdefault(action, set()).add(f"{service}.{op}")
    return need


def _policies() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(IAM.glob("*.json"))}


def _granted(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for st in policy["Statement"]:
        if st.get("Effect") == "Allow" and "Principal" not in st:  # a trust policy grants nothing to dbcost
            a = st["Action"]
            actions |= {a} if isinstance(a, str) else set(a)
    return actions


#: actions granted on "*" on purpose: describe calls without an identifier, which AWS's own examples grant on "*"
_STAR_ON_PURPOSE = frozenset({"rds:DescribeDBClusters", "rds:DescribeDBInstances", "elasticache:DescribeCacheClusters"})


@pytest.mark.parametrize("name", sorted(p.name for p in IAM.glob("*.json")))
def test_parliament_finds_nothing_wrong(name: str) -> None:
    """parliament (Duo Labs' IAM linter, with AWS's action and resource tables) finds no unknown action, no
    malformed statement and no action on "*" that takes a resource ARN, except the describes above."""
    with warnings.catch_warnings():  # parliament 1.6 reads its data files at import without closing them
        warnings.simplefilter("ignore", ResourceWarning)
        from parliament import analyze_policy_string

    policy = _policies()[name]
    if any("Principal" in st for st in policy["Statement"]):
        pytest.skip(f"{name} is a trust policy (a resource policy); parliament lints identity policies")
    findings = analyze_policy_string(json.dumps(policy)).findings
    problems = [(f.issue, f.detail) for f in findings
                if not (f.issue == "RESOURCE_STAR" and set(f.detail) <= _STAR_ON_PURPOSE)]
    assert not problems


def test_the_code_calls_what_the_issue_lists() -> None:
    """The discovery finds the Cost Explorer table, assume-role and the sinks' operations (a guard against a
    discovery that silently finds nothing)."""
    ops = called_operations()
    assert {("ce", "GetCostAndUsage"), ("ce", "GetCostForecast"), ("sts", "AssumeRole"), ("s3", "PutObject"),
            ("kinesis", "PutRecords")} <= ops


@pytest.mark.parametrize("name", sorted(p.name for p in IAM.glob("*.json")))
def test_policy_is_valid_and_least_privilege(name: str) -> None:
    """Each policy is an IAM policy document with explicit, wildcard-free actions and named statements."""
    policy = _policies()[name]
    assert policy["Version"] == "2012-10-17"
    assert policy["Statement"]
    for st in policy["Statement"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"])
        assert st["Effect"] == "Allow"
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", a) for a in actions), actions
        assert "Resource" in st or "Principal" in st


def test_every_operation_the_code_calls_is_granted_and_nothing_else() -> None:
    """The union of the policies is exactly the actions the code's calls need (plus the MSK signer's)."""
    need = required_actions()
    granted = set().union(*(_granted(p) for p in _policies().values()))
    missing = {a: sorted(ops) for a, ops in need.items() if a not in granted}
    assert not missing, f"no policy in docs/iam grants: {missing}"
    extra = {a for a in granted if a not in need and not a.startswith(_NOT_THROUGH_THE_TRANSPORT)}
    if not (SRC / "jobs" / "inventory.py").exists():
        # issue 11's inventory reader (RDS, DynamoDB, ElastiCache) lands in its own branch; until it is here,
        # its policy is ahead of the code (once it is, this is exact both ways)
        extra -= _granted(_policies()["inventory-read.json"])
    assert not extra, f"docs/iam grants actions the code never needs: {sorted(extra)}"


def test_ce_all_is_the_operations_table_and_each_command_set_a_part_of_it() -> None:
    """``ce-all.json`` grants exactly the table's operations; the per-command policies grant subsets."""
    policies = _policies()
    table = {f"ce:{name}" for name in OPERATIONS}
    assert _granted(policies["ce-all.json"]) == table
    for name, policy in policies.items():
        ce = {a for a in _granted(policy) if a.startswith("ce:")}
        assert ce <= table, name


def test_the_inventory_s_own_table_of_actions_is_granted() -> None:
    """When the inventory reader is here, every action its table names is in ``inventory-read.json``."""
    inventory = pytest.importorskip("dbcost.jobs.inventory", reason="issue 11's inventory reader is not merged")
    table = getattr(inventory, "IAM_ACTIONS", {})
    assert {a for actions in table.values() for a in actions} <= _granted(_policies()["inventory-read.json"])


def test_the_iam_readme_lists_every_policy() -> None:
    """docs/iam/README.md links every policy file, and the README points at docs/iam."""
    index = (IAM / "README.md").read_text(encoding="utf-8")
    assert all(f"]({name})" in index for name in _policies())
    assert "docs/iam/" in (ROOT / "README.md").read_text(encoding="utf-8")
