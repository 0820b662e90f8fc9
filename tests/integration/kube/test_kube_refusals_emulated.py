"""Every Kubernetes call of the steps, refused by the API server (the emulator's injected fault, a 500 as an
overloaded or failing API server answers): the step's error names the call and the object, in the server's words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kube_helpers import apis_for, fargate_scheduler, parse, request_json, step_event

from fargate_app.errors import KubernetesUnavailable
from fargate_app.kube.client import KubeApiCache
from fargate_app.kube.models import ApplyAppEvent, CheckPodsGoneEvent, CheckRolloutEvent
from fargate_app.kube.steps import apply_app, check_pods_gone, check_rollout, delete_app
from kube_emulator import KubeEmulator

APPS = "/apis/apps/v1/namespaces/fargate"
CORE = "/api/v1/namespaces/fargate"
INGRESSES = "/apis/networking.k8s.io/v1/namespaces/fargate/ingresses"


def apply(settings: Any, apis: KubeApiCache) -> None:
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)


def reapply(settings: Any, apis: KubeApiCache) -> None:
    """An update of the app (applied already) that no longer exposes it: its Ingress is pruned."""
    apply_app(settings, parse(ApplyAppEvent, step_event(request=request_json(expose=None))), apis)


def rollout(settings: Any, apis: KubeApiCache) -> None:
    check_rollout(settings, parse(CheckRolloutEvent, step_event()), apis)


def delete(settings: Any, apis: KubeApiCache) -> None:
    delete_app(settings, parse(ApplyAppEvent, step_event()).request, apis)


def pods_gone(settings: Any, apis: KubeApiCache) -> None:
    check_pods_gone(settings, parse(CheckPodsGoneEvent, step_event()), apis)


@pytest.mark.parametrize(
    ("step", "fargate", "method", "path", "action"),
    [
        (apply, True, "GET", "/api/v1/namespaces/fargate", "read namespace fargate"),
        (apply, True, "PATCH", "/api/v1/namespaces/fargate", "apply Namespace fargate"),
        (apply, True, "PATCH", f"{APPS}/deployments/demo-app", "apply Deployment fargate/demo-app"),
        (apply, True, "PATCH", f"{CORE}/services/demo-app", "apply Service fargate/demo-app"),
        (apply, True, "PATCH", f"{INGRESSES}/demo-app", "apply Ingress fargate/demo-app"),
        (reapply, True, "GET", f"{APPS}/deployments/demo-app", "read deployment fargate/demo-app"),
        (reapply, True, "GET", f"{INGRESSES}/demo-app", "read Ingress fargate/demo-app"),
        (reapply, True, "DELETE", f"{INGRESSES}/demo-app", "delete Ingress fargate/demo-app"),
        (rollout, True, "GET", f"{APPS}/deployments/demo-app", "read deployment fargate/demo-app"),
        (rollout, True, "GET", f"{CORE}/pods", "list the pods of fargate/demo-app"),
        (rollout, False, "GET", f"{CORE}/events", "list the events of namespace fargate"),
        (delete, True, "GET", f"{APPS}/deployments/demo-app", "read Deployment fargate/demo-app"),
        (delete, True, "DELETE", f"{INGRESSES}/demo-app", "delete Ingress fargate/demo-app"),
        (pods_gone, True, "GET", f"{CORE}/pods", "list the pods of fargate/demo-app"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_refused_call_names_what_the_step_asked(
    start_emulator: Callable[..., KubeEmulator],
    settings: Any,
    step: Callable[[Any, KubeApiCache], None],
    fargate: bool,
    method: str,
    path: str,
    action: str,
) -> None:
    # Given the app applied (pods placed on Fargate, or pending without a profile), then the API server failing
    # one call
    emulator = start_emulator(scheduler=fargate_scheduler() if fargate else fargate_scheduler(namespace="other"))
    apis = apis_for(emulator)
    if step is not apply:
        apply(settings, apis)
    emulator.api.faults = lambda m, p: (
        (500, "InternalError", "etcdserver: request timed out")
        if (m, p)
        == (
            method,
            path,
        )
        else None
    )
    # When the step makes that call, then its error says which call, on what, and the server's words
    with pytest.raises(KubernetesUnavailable) as refused:
        step(settings, apis)
    assert str(refused.value) == f"{action}: the Kubernetes API is unavailable (500): etcdserver: request timed out"


def test_a_call_the_api_server_does_not_answer_in_time_is_retried_later(
    start_emulator: Callable[..., KubeEmulator], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running app and an API server that takes longer than the steps' request timeout to answer a read
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    apply(settings, apis)
    monkeypatch.setattr("fargate_app.kube.steps.REQUEST_TIMEOUT", 0.3)
    emulator.api.faults = lambda m, p: time.sleep(1.5) if m == "GET" else None
    # When the rollout is checked, then the step does not wait for it: the state machine retries
    with pytest.raises(KubernetesUnavailable) as unanswered:
        rollout(settings, apis)
    assert str(unanswered.value) == (
        "read deployment fargate/demo-app: the Kubernetes API did not answer (MaxRetryError); will retry"
    )


class RecordingCache(KubeApiCache):
    """The production cache, noting for which cluster and region each step asks (the region signs the token)."""

    def __init__(self, real: KubeApiCache) -> None:
        self.real, self.asked = real, []

    def get(self, cluster: str, region: str) -> Any:
        self.asked.append((cluster, region))
        return self.real.get(cluster, region)


def test_every_step_asks_for_the_request_s_cluster_in_the_stack_s_region(
    start_emulator: Callable[..., KubeEmulator], settings: Any
) -> None:
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = RecordingCache(apis_for(emulator))
    for step in (apply, rollout, delete, pods_gone):
        step(settings, apis)
    assert apis.asked == [("blog", "us-west-2")] * 4
