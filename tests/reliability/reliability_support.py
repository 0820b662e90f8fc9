"""Helpers of the reliability suite: running workflows, calling the API function as API Gateway does, and taking an
inventory of everything a provision can create."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api_calls import api_event, call_api, delete_app, post_app  # noqa: F401 (the suite's helpers, re-exported)
from inventory_items import no_app_holds_anything
from request_edits import walkthrough_request

from fargate_app.api.executions import refusal_cause
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

ROOT = Path(__file__).resolve().parents[2]
REQUEST = walkthrough_request()
CLUSTER = "blog"
KUBERNETES_KINDS = ("Namespace", "Deployment", "ReplicaSet", "Pod", "Service", "Ingress", "Node")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def run(workflows: Workflows, machine: str, payload: Any, timeout: float = 90) -> dict[str, Any]:
    """Start an execution and wait for it: DescribeExecution's answer plus the states it entered."""
    arn = workflows.start(machine, payload)
    outcome = workflows.wait(arn, timeout_s=timeout)
    outcome["states"] = workflows.state_order(arn)
    return outcome


def cause_of(outcome: dict[str, Any]) -> dict[str, Any]:
    """The failure report (JSON: step, error, cause, compensated, leftovers), as the API gives it: the Compensate
    step writes it; a request ValidateRequest refused ends with the function's error, which the API reshapes."""
    cause = outcome.get("cause") or "{}"
    return json.loads(refusal_cause(cause) or cause)  # type: ignore[no-any-return]


def provision_executions(workflows: Workflows) -> list[str]:
    sfn = workflows.sandbox.boto3_client("stepfunctions")
    machine = workflows.state_machine_arns["ProvisionStateMachine"]
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]


def inventory(sandbox: Sandbox) -> dict[str, list[str]]:
    """Everything a provision may create, by kind: IAM roles, Fargate profiles, pull-through-cache rules, ECR
    repositories and the Kubernetes objects of the emulated cluster (namespaced ones as namespace/name)."""
    iam, ecr = sandbox.boto3_client("iam"), sandbox.boto3_client("ecr")
    found: dict[str, list[str]] = {
        "IAM roles": [role["RoleName"] for role in iam.list_roles()["Roles"]],
        "Fargate profiles": [p["fargateProfileName"] for p in sandbox.fargate_profiles(CLUSTER)],
        "pull-through-cache rules": [
            rule["ecrRepositoryPrefix"] for rule in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        ],
        "ECR repositories": [repo["repositoryName"] for repo in ecr.describe_repositories()["repositories"]],
    }
    assert sandbox.kubernetes is not None
    for kind in KUBERNETES_KINDS:
        found[kind] = [
            "/".join(filter(None, (item["metadata"].get("namespace"), item["metadata"]["name"])))
            for item in sandbox.kubernetes.objects(kind)
        ]
    return {kind: sorted(names) for kind, names in found.items()}


def created_since(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    """What exists now and did not before, by kind (kinds with nothing new left out)."""
    new = {kind: sorted(set(after[kind]) - set(before.get(kind, []))) for kind in after}
    return {kind: names for kind, names in new.items() if names}


def total(snapshot: dict[str, list[str]]) -> int:
    return sum(len(names) for names in snapshot.values())


# As the suite's conftest.py: waits at 1/100, production logs at DEBUG for the credential scan.
TIME_SCALE = 0.01
ENVIRONMENT = {"ROLLOUT_GRACE_SECONDS": "2", "POWERTOOLS_LOG_LEVEL": "DEBUG"}


def forget_kubernetes_clients() -> None:
    """Each module has its own sandbox (new ports): production's cached Kubernetes clients and STS clients must not
    point at the previous one."""
    from fargate_app.kube.auth import reset_sts_clients
    from fargate_app.kube.client import DEFAULT_APIS

    DEFAULT_APIS.forget()
    reset_sts_clients()


def without_shared_profiles(sandbox: Sandbox) -> None:
    """Delete (as the administrator, through the sandbox's EKS) the profiles whose ``*`` selector serves every managed
    app: moto's state is per process, so an earlier module may have left one that this module's apps would reuse."""
    eks = sandbox.boto3_client("eks")
    shared = [
        p["fargateProfileName"]
        for p in sandbox.fargate_profiles(CLUSTER)
        if any(selector["namespace"] == "*" for selector in p.get("selectors", []))
    ]
    for name in shared:
        deadline = time.monotonic() + 30
        while True:
            try:
                eks.delete_fargate_profile(clusterName=CLUSTER, fargateProfileName=name)
                break
            except eks.exceptions.ResourceInUseException:  # another profile CREATING/DELETING: wait it out
                assert time.monotonic() < deadline
                time.sleep(0.2)
    deadline = time.monotonic() + 30
    while any(p["fargateProfileName"] in shared for p in sandbox.fargate_profiles(CLUSTER)):
        assert time.monotonic() < deadline, "shared profiles still DELETING"
        time.sleep(0.1)


@contextmanager
def per_namespace_workflows(sandbox: Sandbox) -> Iterator[Workflows]:
    """The stack with FargateProfileStrategy=per-namespace: a profile per namespace, which places every pod there."""
    forget_kubernetes_clients()
    without_shared_profiles(sandbox)
    environment = {**ENVIRONMENT, "FARGATE_PROFILE_STRATEGY": "per-namespace"}
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=environment) as harness:
        forget_kubernetes_clients()
        no_app_holds_anything(sandbox, harness)
        yield harness
    forget_kubernetes_clients()


@contextmanager
def lambda_timeouts(workflows: Workflows, timeout_of: Callable[[str, float], float]) -> Iterator[None]:
    """Within the block, each template function's Lambda timeout is ``timeout_of(logical id, its timeout)``; the
    template's own come back after it (Lambda timeouts are real seconds, never scaled by the harness)."""
    functions: dict[str, Any] = workflows.template.functions  # type: ignore[assignment]
    originals = dict(functions)
    for name, function in originals.items():
        functions[name] = dataclasses.replace(function, timeout_seconds=timeout_of(name, function.timeout_seconds))
    try:
        yield
    finally:
        functions.update(originals)
