"""Updates of a running app, through the API, each meeting one fault (the update-fault matrix).

Every case provisions its own app (revision 1) and waits until it runs, arms its fault, then POSTs an update. Whatever
the update's outcome, the app must end Running: the update's objects when it succeeded, the first revision's when it
failed (a failed update applies the last good revision again, never deletes), and a neighbour app in the same
namespace must be untouched (same resourceVersion, its pods Running). Rows are recorded before they are judged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from reliability_support import REQUEST, api_event, call_api, cause_of, post_app, unique

from fargate_app.kube.manifests import EXECUTION_ARN_ANNOTATION
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_updates")
NAMESPACE = "updates"
DEPLOYMENT_APPLY = r"/apis/apps/v1/namespaces/updates/deployments/"
EXPOSED = {"ingress": {"scheme": "internet-facing", "path": "/"}}


@dataclass(frozen=True)
class UpdateCase:
    kind: str
    change: dict[str, Any]  # the request fields the update changes (None: the field is dropped)
    expect: str  # "updated" | "rolled back" | "untouched" (failed before anything was applied)
    error: str | None = None
    arm: Callable[[Sandbox, str], None] = lambda sandbox, app: None
    check: Callable[[Sandbox, str], None] = lambda sandbox, app: None
    # Another app's first provision POSTed at the same moment in the same namespace, with the error it must end with
    alongside: tuple[dict[str, Any], str] | None = None


def kubernetes(status: int, times: int, reason: str) -> Callable[[Sandbox, str], None]:
    return lambda sandbox, app: sandbox.faults.fail_kubernetes(
        DEPLOYMENT_APPLY + app, times, status, method="PATCH", reason=reason
    )


def kubectl_scale(sandbox: Sandbox, app: str) -> None:
    """What `kubectl scale --replicas=2` does: a write of the scale subresource by another field manager."""
    assert sandbox.kubernetes is not None
    code, answer = sandbox.kubernetes.api.handle(
        "PATCH",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{app}/scale",
        {},
        "application/merge-patch+json",
        json.dumps({"spec": {"replicas": 2}}).encode(),
        agent="kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef",
    )
    assert code == 200, answer


def new_pods_cannot_pull(sandbox: Sandbox, app: str) -> None:
    """The kubelet's pulls on Fargate fail (the cache answers its manifest HEAD 404): the update's new pods wait in
    ErrImagePull, which CheckRollout reports as RolloutFailed. The running pods pulled long ago."""
    sandbox.faults.fail_registry(r"/manifests/sha256:", 1000, 404, method="HEAD")


def replicas_stay_scaled(sandbox: Sandbox, app: str) -> None:
    assert deployment(sandbox, app)["spec"]["replicas"] == 2


def serves_on(port: int) -> Callable[[Sandbox, str], None]:
    def check(sandbox: Sandbox, app: str) -> None:
        container = deployment(sandbox, app)["spec"]["template"]["spec"]["containers"][0]
        assert [p["containerPort"] for p in container["ports"]] == [port]

    return check


def has_no_ingress(sandbox: Sandbox, app: str) -> None:
    assert not [i for i in objects(sandbox, "Ingress") if i["metadata"]["name"] == app]


CASES = [
    UpdateCase(
        "another manager owns replicas (kubectl scale)",
        {"cpu": "500m"},
        "updated",
        arm=kubectl_scale,
        check=replicas_stay_scaled,
    ),
    UpdateCase("port changed", {"port": 8080}, "updated", check=serves_on(8080)),
    UpdateCase("ingress dropped", {"expose": None}, "updated", check=has_no_ingress),
    UpdateCase(
        "Kubernetes 409 Conflict on apply",
        {"cpu": "500m"},
        "rolled back",
        "KubernetesConflict",
        arm=kubernetes(409, 1, "Conflict"),
    ),
    UpdateCase(
        "Kubernetes 422 Invalid on apply",
        {"cpu": "500m"},
        "rolled back",
        "ManifestInvalid",
        arm=kubernetes(422, 1, "Invalid"),
    ),
    UpdateCase(
        "Kubernetes 503 on apply past its retries",
        {"cpu": "500m"},
        "rolled back",
        "KubernetesUnavailable",
        arm=kubernetes(503, 7, "ServiceUnavailable"),
    ),
    UpdateCase(
        "image missing upstream", {"image": "public.ecr.aws/nginx/nginx:no-such-tag"}, "untouched", "ImageNotFound"
    ),
    UpdateCase(
        "rollout failure (image not pullable on Fargate)",
        {"cpu": "500m"},
        "rolled back",
        "RolloutFailed",
        arm=new_pods_cannot_pull,
    ),
    UpdateCase(
        "a failing first provision in the same namespace at the same moment",
        {"cpu": "500m"},
        "updated",
        alongside=(
            {**REQUEST, "namespace": NAMESPACE, "app": "typo", "image": "public.ecr.aws/nginx/nginx:no-such-tag"},
            "ImageNotFound",
        ),
    ),
]


def objects(sandbox: Sandbox, kind: str) -> list[dict[str, Any]]:
    assert sandbox.kubernetes is not None
    return list(sandbox.kubernetes.objects(kind, NAMESPACE))


def deployment(sandbox: Sandbox, app: str) -> dict[str, Any]:
    [found] = [d for d in objects(sandbox, "Deployment") if d["metadata"]["name"] == app]
    return found


def running_pods(sandbox: Sandbox, app: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The app's pods once as many run on Fargate nodes as the Deployment wants, with its current template (empty
    if that does not happen within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        wanted = deployment(sandbox, app)
        cpu = wanted["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        pods = [
            p
            for p in objects(sandbox, "Pod")
            if p["metadata"]["labels"].get("app.kubernetes.io/name") == app
            and not p["metadata"].get("deletionTimestamp")
        ]
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and str(p["spec"].get("nodeName", "")).startswith("fargate-")
            and p["spec"]["containers"][0]["resources"]["requests"]["cpu"] == cpu
        ]
        if len(running) == len(pods) == wanted["spec"]["replicas"]:
            return running
        if time.monotonic() > deadline:
            return []
        time.sleep(0.2)


def provision(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> dict[str, Any]:
    status, started = post_app(sandbox, workflows, request)
    assert status == 202, started
    outcome = workflows.wait(started["executionArn"], timeout_s=120)
    outcome["executionName"] = started["executionName"]
    return outcome


def running_first_revision(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> dict[str, Any]:
    """Provision revision 1 and wait until its pods run (a precondition of every case, not what it measures)."""
    first = provision(sandbox, workflows, request)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    assert running_pods(sandbox, request["app"])
    return first


@pytest.fixture(scope="module")
def neighbour(sandbox: Sandbox, workflows: Workflows) -> str:
    """An app beside the updated ones, in the same namespace and on the same profile."""
    app = "neighbour"
    outcome = provision(sandbox, workflows, {**REQUEST, "namespace": NAMESPACE, "app": app})
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    assert running_pods(sandbox, app)
    return app


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_an_update_meeting_a_fault_leaves_the_app_running(
    case: UpdateCase, sandbox: Sandbox, workflows: Workflows, neighbour: str, figures: Any
) -> None:
    # Given revision 1 of an app running beside the neighbour, and the case's fault armed
    app = unique("upd")
    first_request = {**REQUEST, "namespace": NAMESPACE, "app": app, "port": 80, "expose": EXPOSED}
    first = running_first_revision(sandbox, workflows, first_request)
    neighbour_version = deployment(sandbox, neighbour)["metadata"]["resourceVersion"]
    case.arm(sandbox, app)

    # When the update is posted (with another app's first provision at the same moment, for one case)
    update_request = {k: v for k, v in {**first_request, **case.change}.items() if v is not None}
    beside: dict[str, Any] = {}
    if case.alongside is not None:
        other = {**case.alongside[0], "app": unique(case.alongside[0]["app"])}
        with ThreadPoolExecutor(2) as pool:
            started = pool.submit(provision, sandbox, workflows, other)
            update = provision(sandbox, workflows, update_request)
            beside = started.result()
    else:
        update = provision(sandbox, workflows, update_request)
    sandbox.faults.clear()
    cause = cause_of(update) if update["status"] == "FAILED" else {}
    live = deployment(sandbox, app)
    running_as = live["metadata"]["annotations"][EXECUTION_ARN_ANNOTATION].rsplit(":", 1)[-1]
    pods = running_pods(sandbox, app)
    neighbour_untouched = deployment(sandbox, neighbour)["metadata"]["resourceVersion"] == neighbour_version
    revision = {"updated": update["executionName"]}.get(case.expect, first["executionName"])
    figures.add(
        "updates",
        kind=case.kind,
        expected=case.expect,
        status=update["status"],
        error=update.get("error") or "",
        rolled_back_to=cause.get("rolledBackTo") or "",
        running_expected_revision=running_as == revision and bool(pods),
        neighbour_untouched=neighbour_untouched and bool(running_pods(sandbox, neighbour)),
        deleted=[item for item in cause.get("compensated", []) if "rolled back" not in item],
    )

    # Then the expected revision runs, on Fargate, and the neighbour was not touched
    assert running_as == revision, (case.kind, update.get("cause"))
    assert pods, f"{case.kind}: the app's pods are not all Running on Fargate"
    assert neighbour_untouched
    if case.alongside is not None:
        assert (beside["status"], beside.get("error")) == ("FAILED", case.alongside[1]), beside.get("cause")
    if case.expect == "updated":
        assert update["status"] == "SUCCEEDED", update.get("cause")
        case.check(sandbox, app)
        return
    assert (update["status"], update.get("error")) == ("FAILED", case.error), update.get("cause")
    assert cause["leftovers"] == []
    assert cause["compensated"] == (
        [f"app {NAMESPACE}/{app} rolled back to {first['executionName']}"] if case.expect == "rolled back" else []
    )
    assert cause["rolledBackTo"] == (first["executionName"] if case.expect == "rolled back" else None)


def test_an_app_with_a_rolled_back_update_tears_down_completely(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given an app that was updated once (a failed update, then a good one)
    app = unique("hist")
    request = {**REQUEST, "namespace": NAMESPACE, "app": app}
    assert provision(sandbox, workflows, request)["status"] == "SUCCEEDED"
    sandbox.faults.fail_kubernetes(DEPLOYMENT_APPLY + app, 1, 422, method="PATCH", reason="Invalid")
    assert provision(sandbox, workflows, {**request, "cpu": "500m"})["status"] == "FAILED"
    assert provision(sandbox, workflows, {**request, "replicas": 2})["status"] == "SUCCEEDED"
    # When it is deleted
    path = f"/apps/blog/{NAMESPACE}/{app}"
    status, started = call_api(
        sandbox, workflows, api_event("DELETE", path, None, {"cluster": "blog", "namespace": NAMESPACE, "app": app})
    )
    assert status == 202, started
    torn = workflows.wait(started["executionArn"], timeout_s=120)
    # Then its objects are gone and nothing is left
    assert torn["status"] == "SUCCEEDED", torn.get("cause")
    assert not [d for d in objects(sandbox, "Deployment") if d["metadata"]["name"] == app]
