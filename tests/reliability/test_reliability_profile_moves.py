"""An update that changes the app's labels, under per-namespace profiles: the app moves to the profile that matches
its new labels, and the profile it left is deleted unless another app still runs on it (issue: changing ``labels``
orphaned the old profile).

Through the API, as a user updates an app: the POST carries the last good revision, whose profile the update
releases once its rollout succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from figures import Figures
from reliability_support import (
    CLUSTER,
    ENVIRONMENT,
    REQUEST,
    ROOT,
    TIME_SCALE,
    delete_app,
    forget_kubernetes_clients,
    post_app,
    unique,
)

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_profile_moves")
PROFILE_LABEL = "eks.amazonaws.com/fargate-profile"


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    # moto's state outlives a sandbox in the process: a shared profile an earlier module left (namespace "*") would
    # schedule every app here, and no app would need a profile of its own
    eks = sandbox.moto_client("eks")
    for name in eks.list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"]:
        eks.delete_fargate_profile(clusterName=CLUSTER, fargateProfileName=name)
    forget_kubernetes_clients()
    environment = {**ENVIRONMENT, "FARGATE_PROFILE_STRATEGY": "per-namespace"}
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=environment) as harness:
        forget_kubernetes_clients()
        yield harness
    forget_kubernetes_clients()


def succeeded(workflows: Workflows, answer: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    """The API's answer to a start (202), once that execution succeeded: its output."""
    status, started = answer
    assert status == 202, started
    outcome = workflows.wait(started["executionArn"], timeout_s=120)
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    return dict(json.loads(outcome["output"]))


def provisioned(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> dict[str, Any]:
    return succeeded(workflows, post_app(sandbox, workflows, request))


def profiles(sandbox: Sandbox, namespace: str) -> dict[str, str]:
    """The cluster's profiles for ``namespace`` and their status (per-namespace names start with it)."""
    return {
        p["fargateProfileName"]: p["status"]
        for p in sandbox.fargate_profiles(CLUSTER)
        if any(s["namespace"] == namespace for s in p["selectors"])
    }


def pinned_profile(sandbox: Sandbox, namespace: str, app: str) -> str:
    assert sandbox.kubernetes is not None
    [deployment] = [d for d in sandbox.kubernetes.objects("Deployment", namespace) if d["metadata"]["name"] == app]
    return str(deployment["spec"]["template"]["metadata"]["labels"][PROFILE_LABEL])


def test_an_update_with_new_labels_moves_the_app_and_deletes_the_profile_it_left(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given an app running on the profile of its labels
    namespace = unique("moves")
    request = {**REQUEST, "namespace": namespace, "app": unique("web"), "labels": {"tier": "web"}}
    first = provisioned(sandbox, workflows, request)
    left = first["fargateProfile"]["name"]

    # When its labels change
    moved = provisioned(sandbox, workflows, {**request, "labels": {"tier": "api"}})

    # Then it runs on a new profile, and the one it left is being deleted (the result says so)
    now = moved["fargateProfile"]["name"]
    assert now != left and pinned_profile(sandbox, namespace, request["app"]) == now
    release = moved["previousProfile"]
    assert (release["profile"]["name"], release["deleting"], release["kept"]) == (left, True, None)
    assert profiles(sandbox, namespace).get(left) in (None, "DELETING")
    # And its teardown leaves no profile of the namespace
    report = succeeded(workflows, delete_app(sandbox, workflows, {**request, "labels": {"tier": "api"}}))
    assert report["leftovers"] == [] and report["fargateProfile"]["deleting"] is True
    assert profiles(sandbox, namespace) == {}  # the teardown waited for its own; the left one went first


def test_the_profile_it_left_is_kept_while_another_app_runs_on_it(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given two apps with the same labels on one profile
    namespace = unique("moves")
    mover = {**REQUEST, "namespace": namespace, "app": unique("web"), "labels": {"tier": "web"}}
    stayer = {**mover, "app": unique("web")}
    shared = provisioned(sandbox, workflows, mover)["fargateProfile"]["name"]
    assert provisioned(sandbox, workflows, stayer)["fargateProfile"]["name"] == shared

    # When one of them changes its labels
    moved = provisioned(sandbox, workflows, {**mover, "labels": {"tier": "api"}})

    # Then the profile is kept, naming the app still on it, and that app's pods still run there
    release = moved["previousProfile"]
    assert (release["profile"]["name"], release["deleting"]) == (shared, False)
    assert release["kept"] == f"it still schedules deployment {namespace}/{stayer['app']}"
    assert profiles(sandbox, namespace)[shared] == "ACTIVE"
    assert pinned_profile(sandbox, namespace, stayer["app"]) == shared
    # And once both are torn down, no profile of the namespace is left (the next modules count the cluster's)
    for request in (stayer, {**mover, "labels": {"tier": "api"}}):
        assert succeeded(workflows, delete_app(sandbox, workflows, request))["leftovers"] == []
    assert profiles(sandbox, namespace) == {}
