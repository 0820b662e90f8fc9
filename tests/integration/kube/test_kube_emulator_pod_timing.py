"""The emulator takes Fargate's time: a pod is Pending while its micro-VM starts, ContainerCreating on its node while
the image is pulled, then Running; a deleted pod is Terminating for its grace period before it and its node go."""

from __future__ import annotations

import json
from typing import Any

from deployments import deployment
from kube_helpers import REGION

from kube_emulator import FargateLikeScheduler, KubeEmulator, PodTiming, static_profiles


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def namespace(emulator: KubeEmulator, name: str = "fargate") -> None:
    emulator.api.handle(
        "POST", "/api/v1/namespaces", {}, "application/json", f'{{"metadata": {{"name": "{name}"}}}}'.encode()
    )


def deploy(emulator: KubeEmulator, replicas: int = 1, grace: int | None = None) -> None:
    spec: dict[str, Any] = {} if grace is None else {"terminationGracePeriodSeconds": grace}
    body = deployment("web", container="web", replicas=replicas, **spec)
    emulator.api.handle(
        "POST", "/apis/apps/v1/namespaces/fargate/deployments", {}, "application/json", json.dumps(body).encode()
    )


def emulator_with(clock: Clock, timing: PodTiming) -> KubeEmulator:
    scheduler = FargateLikeScheduler(REGION, static_profiles([{"namespace": "fargate"}]), timing=timing, clock=clock)
    emulator = KubeEmulator(scheduler=scheduler, tls=False, pod_timing=timing)
    emulator.controllers.clock = clock
    namespace(emulator)
    return emulator


def pod_view(emulator: KubeEmulator) -> list[tuple[str, str | None, str | None, bool]]:
    """(phase, node, waiting reason, terminating) of each pod."""
    rows = []
    for pod in emulator.objects("Pod", "fargate"):
        waiting = [
            (status.get("state") or {}).get("waiting", {}).get("reason")
            for status in pod["status"].get("containerStatuses") or []
        ]
        rows.append(
            (
                pod["status"]["phase"],
                pod["spec"].get("nodeName"),
                waiting[0] if waiting else None,
                bool(pod["metadata"].get("deletionTimestamp")),
            )
        )
    return rows


def test_a_fargate_pod_starts_in_two_phases_like_a_micro_vm_then_an_image_pull() -> None:
    # Given Fargate's timing (40 s to a node, 60 s to Running) and a Deployment of one pod
    clock = Clock()
    emulator = emulator_with(clock, PodTiming.fargate())
    deploy(emulator)

    # Then it is Pending without a node, without any FailedScheduling event (it is not unschedulable)
    ((phase, node, waiting, _),) = pod_view(emulator)
    assert (phase, node, waiting) == ("Pending", None, None)
    assert [e["reason"] for e in emulator.objects("Event", "fargate")] == []

    # After 40 s it has its fargate- node and its container is being created (the image pull)
    clock.now += 40
    ((phase, node, waiting, _),) = pod_view(emulator)
    assert phase == "Pending" and waiting == "ContainerCreating"
    assert node is not None and node.startswith("fargate-ip-") and node.endswith(f".{REGION}.compute.internal")
    assert [n["metadata"]["name"] for n in emulator.objects("Node")] == [node]

    # After 60 s it runs there, and the Deployment counts it ready
    clock.now += 20
    assert pod_view(emulator) == [("Running", node, None, False)]
    (state,) = emulator.objects("Deployment", "fargate")
    assert state["status"]["readyReplicas"] == 1
    reasons = [e["reason"] for e in emulator.objects("Event", "fargate")]
    assert reasons.count("Scheduled") == 1 and "Pulling" in reasons and "Started" in reasons


def test_a_pod_first_looked_at_after_its_start_is_running_with_its_scheduled_event() -> None:
    # Given Fargate's timing and a Deployment, and nobody reading the cluster until the pod's start is long past (a
    # loaded machine: the controllers see the pod only once it is already due to run)
    clock = Clock()
    emulator = emulator_with(clock, PodTiming.fargate())
    clock_at_create = clock.now
    deploy(emulator)
    clock.now = clock_at_create + 120

    # When it is read, it is Running on its node, with the scheduler's event as if it had been watched
    ((phase, node, _, _),) = pod_view(emulator)
    assert phase == "Running" and node is not None
    events = [(e["reason"], e["message"]) for e in emulator.objects("Event", "fargate")]
    assert [reason for reason, _ in events].count("Scheduled") == 1
    assert any(reason == "Scheduled" and message.endswith(f" to {node}") for reason, message in events)


def test_a_deleted_pod_is_terminating_for_its_grace_period_then_goes_with_its_node() -> None:
    # Given a running pod (timing scaled by 0.1: its 30 s grace period lasts 3 s)
    clock = Clock()
    emulator = emulator_with(clock, PodTiming.fargate(0.1))
    deploy(emulator)
    clock.now += 6
    ((_, node, _, _),) = pod_view(emulator)

    # When its Deployment is deleted
    emulator.api.handle("DELETE", "/apis/apps/v1/namespaces/fargate/deployments/web", {}, "", b"")

    # Then the pod is Terminating (deletionTimestamp), with a Killing event, and its node stays
    assert pod_view(emulator) == [("Running", node, None, True)]
    assert "Killing" in [e["reason"] for e in emulator.objects("Event", "fargate")]
    clock.now += 2.9
    assert len(pod_view(emulator)) == 1
    # and after the grace period both are gone
    clock.now += 0.2
    assert pod_view(emulator) == []
    assert emulator.objects("Node") == []


def test_a_pod_deleted_through_the_api_is_answered_terminating_and_replaced_at_once() -> None:
    # Given a Deployment of one running pod whose grace period is 10 s
    clock = Clock()
    emulator = emulator_with(clock, PodTiming.fargate(0.1))
    deploy(emulator, replicas=1, grace=10)
    clock.now += 6
    (pod,) = emulator.objects("Pod", "fargate")

    # When the pod is deleted (kubectl delete pod)
    code, answer = emulator.api.handle(
        "DELETE", f"/api/v1/namespaces/fargate/pods/{pod['metadata']['name']}", {}, "", b""
    )

    # Then the answer is the pod with its deletionTimestamp, the ReplicaSet starts a replacement right away
    assert (
        code == 200
        and answer["metadata"]["deletionTimestamp"]
        and answer["metadata"]["deletionGracePeriodSeconds"] == 10
    )
    assert sorted(row[3] for row in pod_view(emulator)) == [False, True]
    # and the old one goes after its own grace period (10 s × 0.1)
    clock.now += 1.0
    assert [row[3] for row in pod_view(emulator)] == [False]


def test_pod_addresses_are_reused_after_their_pods_are_gone() -> None:
    # Given pods started and deleted 300 times (more than the 244 addresses of the /24 the scheduler hands out)
    clock = Clock()
    emulator = emulator_with(clock, PodTiming())
    deploy(emulator)
    seen = set()
    for _ in range(300):
        (pod,) = emulator.objects("Pod", "fargate")
        seen.add(pod["status"]["podIP"])
        emulator.api.handle("DELETE", f"/api/v1/namespaces/fargate/pods/{pod['metadata']['name']}", {}, "", b"")

    # Then the cluster kept scheduling: an address is handed out again once its pod is gone
    (pod,) = emulator.objects("Pod", "fargate")
    assert pod["status"]["phase"] == "Running"
    assert len(seen) < 300
