"""What keeps a Fargate profile alive, read from the emulator (which places pods itself, as EKS does): deleting a
profile deletes every pod it placed, so teardown and compensation must see pods that are not ours."""

from __future__ import annotations

from typing import Any

from deployments import deployment
from kube_helpers import REGION, apis_for, parse, step_event

from fargate_app.kube.models import ApplyAppEvent
from fargate_app.kube.steps import apply_app
from fargate_app.kube.usage import profile_users
from kube_emulator import FargateLikeScheduler

MANAGED = {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}
SHARED = {"fargateProfileName": "fp-shared", "status": "ACTIVE", "selectors": [{"namespace": "*", "labels": MANAGED}]}
TEAM = {"fargateProfileName": "fp-team", "status": "ACTIVE", "selectors": [{"namespace": "team"}]}


def scheduler() -> FargateLikeScheduler:
    return FargateLikeScheduler(REGION, lambda: [SHARED, TEAM])


def our_app_on_the_shared_profile(start_emulator: Any, settings: Any) -> tuple[Any, Any, ApplyAppEvent]:
    """The emulator placing pods with SHARED and TEAM, and our app applied on the shared profile."""
    emulator = start_emulator(scheduler=scheduler())
    apis = apis_for(emulator)
    event = parse(ApplyAppEvent, step_event(fargateProfileName="fp-shared"))
    apply_app(settings, event, apis)
    return emulator, apis, event


def someone_elses_deployment(api: Any, namespace: str, name: str, labels: dict[str, str]) -> None:
    """kubectl or Helm: a Deployment the provisioner does not manage (its own labels carry no managed-by)."""
    manifest = deployment(name, "registry/x@sha256:" + "c" * 64, pod_labels=labels)
    api.apps.create_namespaced_deployment(namespace, manifest, field_manager="kubectl")


def test_an_unmanaged_pod_our_profile_placed_keeps_the_profile(start_emulator: Any, settings: Any) -> None:
    # Given our app on the shared profile, and someone else's Deployment whose pods the profile also placed
    emulator, apis, event = our_app_on_the_shared_profile(start_emulator, settings)
    api = apis.get("blog", REGION)
    api.core.create_namespace({"metadata": {"name": "other"}})
    someone_elses_deployment(api, "other", "helm-app", MANAGED)
    placed = {p["metadata"]["name"]: p["metadata"]["annotations"] for p in emulator.objects("Pod")}
    assert all(a["eks.amazonaws.com/fargate-profile"] == "fp-shared" for a in placed.values()), placed
    # When our app's teardown asks what else uses the profile
    users = profile_users(settings, event.request, SHARED, apis)
    # Then someone else's pod is named (the Deployment listing by our label could not see it)
    helm_pod = next(name for name in placed if name.startswith("helm-app-"))
    assert users == [f"pod other/{helm_pod}"]


def test_our_own_pods_and_unplaced_apps_do_not_keep_a_profile(start_emulator: Any, settings: Any) -> None:
    # Given only our app on the profile, and someone else's app in a namespace another profile places
    emulator, apis, event = our_app_on_the_shared_profile(start_emulator, settings)
    api = apis.get("blog", REGION)
    api.core.create_namespace({"metadata": {"name": "team"}})
    someone_elses_deployment(api, "team", "their-app", {})
    # Then nothing else uses the shared profile, while the team profile is used by their pod
    assert profile_users(settings, event.request, SHARED, apis) == []
    [their_pod] = [p["metadata"]["name"] for p in emulator.objects("Pod", "team")]
    assert profile_users(settings, event.request, TEAM, apis) == [f"pod team/{their_pod}"]


def test_another_managed_app_keeps_the_profile_before_its_pods_are_placed(start_emulator: Any, settings: Any) -> None:
    # Given two managed apps; the second's pods are not placed yet (no profile was ACTIVE for them: Pending)
    emulator = start_emulator(scheduler=FargateLikeScheduler(REGION, lambda: []))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    other = step_event(request={**step_event()["request"], "app": "api", "expose": None, "port": None})
    apply_app(settings, parse(ApplyAppEvent, other), apis)
    # When the first app's teardown asks, Then the second Deployment is named
    assert profile_users(settings, parse(ApplyAppEvent, step_event()).request, SHARED, apis) == [
        "deployment fargate/api"
    ]
    assert len(emulator.objects("Pod", "fargate")) == 2


def test_a_managed_app_whose_pods_name_another_profile_does_not_keep_this_one(
    start_emulator: Any, settings: Any
) -> None:
    # Given two shared profiles (two subnet sets) that both select every managed pod, and an app on the second
    second = {**SHARED, "fargateProfileName": "fp-shared-b"}
    emulator = start_emulator(scheduler=FargateLikeScheduler(REGION, lambda: [SHARED, second]))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event(fargateProfileName="fp-shared-b")), apis)
    [pod] = emulator.objects("Pod", "fargate")
    assert pod["metadata"]["annotations"]["eks.amazonaws.com/fargate-profile"] == "fp-shared-b"
    # When another app's teardown asks about the first profile, then nothing uses it; the second is used
    leaving = parse(ApplyAppEvent, step_event(request={**step_event()["request"], "app": "gone"})).request
    assert profile_users(settings, leaving, SHARED, apis) == []
    assert profile_users(settings, leaving, second, apis) == ["deployment fargate/demo-app"]


def test_a_managed_app_the_profile_does_not_select_does_not_keep_it(start_emulator: Any, settings: Any) -> None:
    # Given a managed app without the profile label (a per-namespace profile's app), Pending: no profile placed it
    emulator = start_emulator(scheduler=FargateLikeScheduler(REGION, lambda: []))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    elsewhere = {"fargateProfileName": "fp-elsewhere", "status": "ACTIVE", "selectors": [{"namespace": "elsewhere"}]}
    leaving = parse(ApplyAppEvent, step_event(request={**step_event()["request"], "app": "gone"})).request
    # When another app's teardown asks about a profile whose selector admits none of its pods, then nothing uses it
    assert profile_users(settings, leaving, elsewhere, apis) == []
    # and the profile that does select the app's namespace is kept by it
    assert profile_users(settings, leaving, {**elsewhere, "selectors": [{"namespace": "fargate"}]}, apis) == [
        "deployment fargate/demo-app"
    ]
