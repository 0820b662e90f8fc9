"""Fargate placement as EKS decides it: once, when the pod is created (the mutating webhook), and undone only by
deleting the profile, which deletes the pods it placed."""

from __future__ import annotations

import json
from typing import Any

from deployments import deployment
from kube_helpers import REGION

from kube_emulator import FargateLikeScheduler, KubeEmulator
from kube_emulator.scheduling import FARGATE_PROFILE_KEY


class Profiles:
    """The cluster's profiles as DescribeFargateProfile shows them, changed by the test."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, name: str, selectors: list[dict[str, Any]], status: str = "ACTIVE") -> dict[str, Any]:
        profile = {"fargateProfileName": name, "status": status, "selectors": selectors}
        self.items.append(profile)
        return profile

    def __call__(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self.items]


def emulator_with(profiles: Profiles) -> KubeEmulator:
    emulator = KubeEmulator(scheduler=FargateLikeScheduler(REGION, profiles), tls=False)
    emulator.api.handle("POST", "/api/v1/namespaces", {}, "application/json", b'{"metadata": {"name": "fargate"}}')
    return emulator


def deploy(emulator: KubeEmulator, name: str = "web", labels: dict[str, str] | None = None) -> None:
    body = deployment(name, pod_labels=labels)
    code, answer = emulator.api.handle(
        "POST", "/apis/apps/v1/namespaces/fargate/deployments", {}, "application/json", json.dumps(body).encode()
    )
    assert code == 201, answer


def pods(emulator: KubeEmulator) -> list[dict[str, Any]]:
    return [p for p in emulator.objects("Pod", "fargate") if not p["metadata"].get("deletionTimestamp")]


def placement(pod: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(schedulerName, the profile annotation, phase)."""
    return (
        pod["spec"]["schedulerName"],
        (pod["metadata"].get("annotations") or {}).get(FARGATE_PROFILE_KEY),
        pod["status"].get("phase"),
    )


def test_a_pod_created_before_its_profile_is_active_stays_pending_until_recreated() -> None:
    # Given a profile still CREATING when the app's pod is created
    profiles = Profiles()
    creating = profiles.add("fp", [{"namespace": "fargate"}], status="CREATING")
    emulator = emulator_with(profiles)
    deploy(emulator)
    # When the profile becomes ACTIVE
    creating["status"] = "ACTIVE"
    # Then the pod stays with the default scheduler, Pending with FailedScheduling: placement was decided at creation
    [pod] = pods(emulator)
    assert placement(pod) == ("default-scheduler", None, "Pending")
    assert pod["status"]["conditions"][0]["reason"] == "Unschedulable"
    # When the pod is deleted, its ReplicaSet's new pod is admitted for Fargate and runs
    name = pod["metadata"]["name"]
    emulator.api.handle("DELETE", f"/api/v1/namespaces/fargate/pods/{name}", {}, "", b"")
    [again] = pods(emulator)
    assert placement(again) == ("fargate-scheduler", "fp", "Running")
    assert again["spec"]["nodeName"].startswith("fargate-ip-")


def test_among_several_matching_profiles_the_pods_label_chooses_else_the_first_by_name() -> None:
    profiles = Profiles()
    profiles.add("b-wide", [{"namespace": "*"}])
    profiles.add("a-labelled", [{"namespace": "farg?te", "labels": {"tier": "w*"}}])
    emulator = emulator_with(profiles)
    deploy(emulator, "chosen", {"tier": "web", FARGATE_PROFILE_KEY: "b-wide"})
    deploy(emulator, "first", {"tier": "web"})
    deploy(emulator, "other", {"tier": "db"})
    placed = {p["metadata"]["labels"]["app"]: placement(p)[1] for p in pods(emulator)}
    assert placed == {"chosen": "b-wide", "first": "a-labelled", "other": "b-wide"}


def test_a_pod_no_profile_selects_goes_to_the_default_scheduler() -> None:
    profiles = Profiles()
    profiles.add("fp", [{"namespace": "other"}])
    emulator = emulator_with(profiles)
    deploy(emulator)
    [pod] = pods(emulator)
    assert placement(pod) == ("default-scheduler", None, "Pending")


def test_deleting_a_profile_deletes_the_pods_it_placed_and_their_replacements_wait() -> None:
    # Given two apps on Fargate, one placed by each of two profiles
    profiles = Profiles()
    profiles.add("fp-web", [{"namespace": "fargate", "labels": {"app": "web"}}])
    profiles.add("fp-api", [{"namespace": "fargate", "labels": {"app": "api"}}])
    emulator = emulator_with(profiles)
    deploy(emulator, "web")
    deploy(emulator, "api")
    before = {p["metadata"]["labels"]["app"]: p["metadata"]["name"] for p in pods(emulator)}
    # When fp-web is deleted (EKS deletes the pods it scheduled)
    profiles.items = [p for p in profiles.items if p["fargateProfileName"] != "fp-web"]
    evicted = emulator.controllers.evict(FARGATE_PROFILE_KEY, "fp-web")
    # Then only web's pod was deleted; its replacement is Pending (no profile selects it), api's pod still runs
    assert evicted == [f"fargate/{before['web']}"]
    after = {p["metadata"]["labels"]["app"]: p for p in pods(emulator)}
    assert after["web"]["metadata"]["name"] != before["web"]
    assert placement(after["web"]) == ("default-scheduler", None, "Pending")
    assert (after["api"]["metadata"]["name"], placement(after["api"])) == (
        before["api"],
        ("fargate-scheduler", "fp-api", "Running"),
    )
