"""Never evict what is not ours: deleting a Fargate profile deletes every pod it placed (EKS user guide, "Delete a
Fargate profile"), and the sandbox's EKS does the same. Someone else's app in the namespace of our app — placed by our
per-namespace profile — must survive our app's teardown and a compensation of a failed provision there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from deployments import deployment
from figures import Figures, record_polls
from reliability_support import REQUEST, per_namespace_workflows, run, unique

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

CLUSTER = "blog"
PLACED_BY = "eks.amazonaws.com/fargate-profile"
pytestmark = pytest.mark.xdist_group("reliability_profiles")


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    """The stack with FargateProfileStrategy=per-namespace: the profile selects a whole namespace, so another
    team's pods there are placed by it."""
    with per_namespace_workflows(sandbox) as harness:
        yield harness
        record_polls(figures, harness, "reliability")


def their_app(sandbox: Sandbox, namespace: str) -> list[str]:
    """Another team's Deployment (kubectl, as the cluster's administrator) once our profile is ACTIVE: its running
    pods, each placed by our profile."""
    assert sandbox.kubernetes is not None
    body = deployment("their-app", "registry.k8s.io/pause:3.10", replicas=2)
    code, answer = sandbox.kubernetes.api.handle(
        "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", {}, "application/json", json.dumps(body).encode()
    )
    assert code == 201, answer
    return pods_of_their_app(sandbox, namespace)


def pods_of_their_app(sandbox: Sandbox, namespace: str) -> list[str]:
    assert sandbox.kubernetes is not None
    return sorted(
        p["metadata"]["name"]
        for p in sandbox.kubernetes.objects("Pod", namespace)
        if p["metadata"]["labels"].get("app") == "their-app" and not p["metadata"].get("deletionTimestamp")
    )


def placed_by(sandbox: Sandbox, namespace: str, name: str) -> str | None:
    assert sandbox.kubernetes is not None
    pod = next(p for p in sandbox.kubernetes.objects("Pod", namespace) if p["metadata"]["name"] == name)
    return (pod["metadata"].get("annotations") or {}).get(PLACED_BY)


def profile_names(sandbox: Sandbox) -> list[str]:
    return sorted(p["fargateProfileName"] for p in sandbox.fargate_profiles(CLUSTER))


def test_our_teardown_keeps_the_profile_that_placed_someone_elses_pods(
    sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given our app, whose provision created the namespace's profile, and another team's app placed by that profile
    row = figures.row("never_evict", case="teardown", evicted=None, profile_kept=None)  # completed when measured
    namespace = unique("shared")
    provision = run(workflows, "ProvisionStateMachine", {**REQUEST, "namespace": namespace})
    assert provision["status"] == "SUCCEEDED", provision.get("cause")
    ours = json.loads(provision["output"])
    profile = ours["fargateProfile"]["name"]
    theirs = their_app(sandbox, namespace)
    assert [placed_by(sandbox, namespace, pod) for pod in theirs] == [profile, profile]
    # When our app is torn down
    teardown = run(workflows, "TeardownStateMachine", {"request": ours["request"], "provision": ours})
    result = json.loads(teardown["output"])
    survivors = pods_of_their_app(sandbox, namespace)
    evicted = sorted(set(theirs) - set(survivors))
    row.update(evicted=len(evicted), profile_kept=profile in profile_names(sandbox))
    # Then their pods were not evicted, the profile is kept, and the result says why
    assert teardown["status"] == "SUCCEEDED" and result["leftovers"] == []
    assert evicted == [] and profile in profile_names(sandbox)
    [kept_profile] = [k for k in result["kept"] if "fargateProfile" in k]
    assert kept_profile["fargateProfile"] == profile
    assert all(f"pod {namespace}/{pod}" in kept_profile["reason"] for pod in theirs), kept_profile
    # and the shared resources it never deletes are listed too
    assert {next(iter(k)) for k in result["kept"]} == {
        "fargateProfile",
        "podExecutionRole",
        "cacheRule",
        "cachedRepository",
    }


def test_compensation_keeps_the_profile_that_placed_someone_elses_pods(
    sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given a provision that created its namespace's profile, then another team's app placed by that profile
    row = figures.row("never_evict", case="compensation", evicted=None, profile_kept=None)  # completed when measured
    namespace = unique("comp")
    provision = run(workflows, "ProvisionStateMachine", {**REQUEST, "namespace": namespace, "app": "web"})
    assert provision["status"] == "SUCCEEDED", provision.get("cause")
    state = json.loads(provision["output"])
    theirs = their_app(sandbox, namespace)
    # When the Compensate step runs for that execution's state as a failed rollout would leave it (the real
    # function, its role and its Kubernetes access entry)
    failed = {**state, "failedStep": "CheckRollout", "error": {"Error": "RolloutFailed", "Cause": "injected"}}
    assert failed["fargateProfile"]["created"] is True  # this execution's to undo, were nothing else using it
    function = workflows.template.functions["CompensateFunction"].name
    answer = sandbox.boto3_client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"state": failed}).encode()
    )
    report = json.loads(answer["Payload"].read())
    cause = json.loads(report["cause"])
    evicted = sorted(set(theirs) - set(pods_of_their_app(sandbox, namespace)))
    profile = state["fargateProfile"]["name"]
    row.update(evicted=len(evicted), profile_kept=profile in profile_names(sandbox))
    # Then our app's objects are gone, their pods were not evicted and the profile stays, named as kept
    assert "FunctionError" not in answer, report
    assert evicted == [] and profile in profile_names(sandbox)
    assert cause["leftovers"] == [] and any(profile in item for item in cause["kept"]), cause
