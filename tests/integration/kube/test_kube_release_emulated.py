"""Compensation and teardown against the emulator, which places pods as EKS does: they delete the app's objects, and
release the Fargate profile only when no one else's pod runs on it (deleting a profile deletes the pods it placed).

The Kubernetes side is real (production clients, the emulator's placement); only the EKS calls are replaced: the
emulator's token check needs real keys, which moto would swap for its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kube_helpers import REGION, endpoint_of, parse, step_event
from test_kube_profile_users import MANAGED, someone_elses_deployment

from fargate_app.aws.tags import MANAGED_BY_TAG
from fargate_app.compensate import compensate
from fargate_app.config import Settings
from fargate_app.holders import Release
from fargate_app.kube import client
from fargate_app.kube.models import ApplyAppEvent
from fargate_app.kube.steps import apply_app
from fargate_app.teardown import ReleaseProfileEvent, release_fargate_profile
from kube_emulator import FargateLikeScheduler, KubeEmulator

PROFILE = "fp-shared"
SHARED = {
    "clusterName": "blog",
    "fargateProfileName": PROFILE,
    "status": "ACTIVE",
    "selectors": [{"namespace": "*", "labels": MANAGED}],
    "subnets": ["subnet-0abc1234"],
    "tags": {MANAGED_BY_TAG: "fargate-app-provisioner"},
}


@pytest.fixture
def emulator(start_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeEmulator]:
    """The cluster, with the production code's default clients pointed at it (as DescribeCluster would)."""
    started = start_emulator(scheduler=FargateLikeScheduler(REGION, lambda: [SHARED]))
    endpoint = endpoint_of(started)
    monkeypatch.setattr(client.DEFAULT_APIS, "_source", lambda cluster: endpoint)
    client.DEFAULT_APIS.forget()
    yield started
    client.DEFAULT_APIS.forget()


@pytest.fixture
def deleted_profiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """EKS's DeleteFargateProfile, recorded; DescribeFargateProfile answers the shared profile; no other app holds
    anything (these tests are about what the cluster shows; holder sets are tests/unit/test_holders.py's)."""
    deleted: list[str] = []

    def nobody_else_holds(settings: Settings, resource: str, holder: str, claimant: str, delete: Any) -> Release:
        if delete is not None:
            delete()
        return Release(deleted=delete is not None)

    for module in ("fargate_app.compensate", "fargate_app.teardown"):
        monkeypatch.setattr(f"{module}.release_and_delete", nobody_else_holds)
        monkeypatch.setattr(f"{module}.release", lambda settings, resource, holder: [])
    for module in ("fargate_app.compensate", "fargate_app.teardown"):
        monkeypatch.setattr(f"{module}.delete_fargate_profile", lambda cluster, name: deleted.append(name) or True)
    monkeypatch.setattr("fargate_app.teardown._describe", lambda cluster, name: SHARED if name == PROFILE else None)
    return deleted


def our_app(settings: Settings) -> dict[str, Any]:
    """Apply the demo app on the shared profile; the state its provision would carry."""
    event = step_event(fargateProfileName=PROFILE)
    apply_app(settings, parse(ApplyAppEvent, event), client.DEFAULT_APIS)
    return event


def someone_elses_pod(emulator: KubeEmulator) -> str:
    """A Helm release in namespace ``other`` whose pod the shared profile placed (its labels match the selector)."""
    api = client.DEFAULT_APIS.get("blog", REGION)
    api.core.create_namespace({"metadata": {"name": "other"}})
    someone_elses_deployment(api, "other", "helm-app", MANAGED)
    [pod] = [pod["metadata"]["name"] for pod in emulator.objects("Pod", "other")]
    return str(pod)


def failed_at(event: dict[str, Any], step: str, **more: Any) -> dict[str, Any]:
    cause = json.dumps({"errorType": "RolloutFailed", "errorMessage": "pods never became ready"})
    return {**event, "failedStep": step, "error": {"Error": "RolloutFailed", "Cause": cause}, **more}


def created_profile() -> dict[str, Any]:
    return {"cluster": "blog", "name": PROFILE, "status": "ACTIVE", "created": True, "selectors": SHARED["selectors"]}


def test_compensation_deletes_the_apps_objects_and_the_profile_only_it_used(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given the app applied on a profile this execution created, its pods placed there, and its rollout failed
    event = our_app(settings)
    assert emulator.objects("Deployment", "fargate") and emulator.objects("Pod", "fargate")
    # When compensating
    result = compensate(settings, failed_at(event, "CheckRollout", fargateProfile=created_profile()))
    # Then the app's objects are gone from the cluster, newest first, and so is the profile nothing else uses
    assert result.compensated == [
        "Ingress fargate/demo-app",
        "Service fargate/demo-app",
        "Deployment fargate/demo-app",
        f"Fargate profile {PROFILE}",
    ]
    assert [emulator.objects(kind, "fargate") for kind in ("Deployment", "Service", "Ingress")] == [[], [], []]
    assert deleted_profiles == [PROFILE]
    assert (result.leftovers, result.kept) == ([], [])


def test_compensation_keeps_a_profile_that_placed_someone_elses_pod(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given someone else's Deployment (Helm) whose pod the shared profile placed, beside our failed app
    event = our_app(settings)
    their_pod = someone_elses_pod(emulator)
    # When compensating
    result = compensate(settings, failed_at(event, "CheckRollout", fargateProfile=created_profile()))
    # Then the profile is kept, naming the pod it would have killed, and that pod still exists
    assert deleted_profiles == []
    assert result.kept == [f"Fargate profile {PROFILE} (kept: it schedules pod other/{their_pod})"]
    assert [pod["metadata"]["name"] for pod in emulator.objects("Pod", "other")] == [their_pod]


def test_compensation_keeps_a_profile_whose_selectors_take_another_managed_app(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given another managed app whose pod template names no profile: the created profile takes it by its selectors
    event = our_app(settings)
    other = step_event(request={**event["request"], "app": "api", "expose": None, "port": None})
    apply_app(settings, parse(ApplyAppEvent, other), client.DEFAULT_APIS)
    # When compensating our failed app
    result = compensate(settings, failed_at(event, "CheckRollout", fargateProfile=created_profile()))
    # Then the profile is kept, naming the Deployment (its pods are its own, not named apart), and the app FAILED
    assert deleted_profiles == []
    assert result.kept == [f"Fargate profile {PROFILE} (kept: it schedules deployment fargate/api)"]
    assert result.app_state == "FAILED"


def teardown_event(event: dict[str, Any]) -> ReleaseProfileEvent:
    provision = {"fargateProfile": {**created_profile(), "created": False}}
    return parse(ReleaseProfileEvent, {"request": event["request"], "provision": provision})


def test_teardown_keeps_the_shared_profile_while_someone_elses_pod_runs_on_it(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given our app, which reused the shared profile, and someone else's pod on that profile
    event = our_app(settings)
    their_pod = someone_elses_pod(emulator)
    # When our app's teardown releases the profile
    release = release_fargate_profile(settings, teardown_event(event))
    # Then it is kept, and the result says which pod keeps it
    assert (release.deleting, deleted_profiles) == (False, [])
    assert release.kept_resources[0] == {
        "fargateProfile": PROFILE,
        "reason": f"it still schedules pod other/{their_pod}",
        "holders": [],
    }


def test_teardown_deletes_the_shared_profile_when_the_last_app_leaves(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given our app alone on the shared profile
    event = our_app(settings)
    # When its teardown releases the profile
    release = release_fargate_profile(settings, teardown_event(event))
    # Then the profile is being deleted and nothing is reported kept for it
    assert (release.deleting, release.kept, deleted_profiles) == (True, None, [PROFILE])


def revision(event: dict[str, Any]) -> dict[str, Any]:
    """What the API passes as ``previous`` for a provision that succeeded with ``event`` as its ApplyApp input."""
    return {
        "executionArn": event["executionArn"],
        "request": event["request"],
        "image": {"cached": event["image"]["cached"]},
        "caller": "console",
        "fargateProfileName": event["fargateProfileName"],
    }


def an_update(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The state of an update execution of the app: the same app with ``changes``, by another execution."""
    request = {key: value for key, value in {**event["request"], **changes}.items() if value is not None}
    arn = event["executionArn"].replace("demo-app-1", "demo-app-2")
    reused_profile = {**created_profile(), "created": False}
    return {**event, "request": request, "executionArn": arn, "fargateProfile": reused_profile}


def test_a_failed_update_applies_the_last_good_revision_again_and_deletes_nothing(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given the app running, then an update (2 replicas, port 8080, no ingress) applied, whose rollout failed
    first = our_app(settings)
    update = an_update(first, replicas=2, port=8080, expose=None)
    apply_app(settings, parse(ApplyAppEvent, update), client.DEFAULT_APIS)
    assert emulator.objects("Ingress", "fargate") == []

    # When compensating the update, which carries the last good revision
    result = compensate(settings, failed_at(update, "CheckRollout", previous=revision(first)))

    # Then the first revision's objects are back (its spec, its annotation, its Ingress) and nothing was deleted
    assert (result.rolled_back_to, result.app_state) == ("demo-app-1", "RUNNING")
    assert json.loads(result.cause)["rolledBackTo"] == "demo-app-1"
    assert result.compensated == ["app fargate/demo-app rolled back to demo-app-1"]
    assert (result.leftovers, deleted_profiles) == ([], [])
    [deployment] = emulator.objects("Deployment", "fargate")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["annotations"]["fargate-app.io/execution-arn"] == first["executionArn"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 80
    assert [obj["metadata"]["name"] for obj in emulator.objects("Ingress", "fargate")] == ["demo-app"]


@pytest.mark.parametrize("elsewhere", ["region", "account"])
def test_a_last_good_revision_whose_secret_is_outside_the_stacks_region_or_account_is_not_applied(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str], elsewhere: str
) -> None:
    # Given the app running, an update that failed in its rollout, and a `previous` (a console start may give any)
    # whose credential secret is in another region or account than the stack's
    first = our_app(settings)
    update = an_update(first, replicas=2)
    apply_app(settings, parse(ApplyAppEvent, update), client.DEFAULT_APIS)
    region, account = ("eu-west-1", settings.account_id) if elsewhere == "region" else (REGION, "210987654321")
    secret = f"arn:aws:secretsmanager:{region}:{account}:secret:ecr-pullthroughcache/docker-AbCdEf"
    previous = revision(first)
    previous["request"] = {**previous["request"], "image": "docker.io/library/nginx:1.27", "credentialArn": secret}

    # When compensating the update
    result = compensate(settings, failed_at(update, "CheckRollout", previous=previous))

    # Then that revision is refused under the stack's rule, as a start would be, and the update's objects stay
    rule = {"region": f"region {REGION}, the region", "account": f"account {settings.account_id}, the account"}
    assert result.rolled_back_to is None
    [leftover] = result.leftovers
    assert f"the secret must be in {rule[elsewhere]} of the cache rule" in leftover
    [deployment] = emulator.objects("Deployment", "fargate")
    assert deployment["spec"]["replicas"] == 2


def test_an_update_that_added_an_ingress_loses_it_in_the_rollback(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given the app running without port or ingress, then an update that adds both and fails in its rollout
    first = our_app_without_exposure(settings)
    update = an_update(first, port=80, expose={"ingress": {"scheme": "internal", "path": "/"}})
    apply_app(settings, parse(ApplyAppEvent, update), client.DEFAULT_APIS)

    # When compensating the update
    result = compensate(settings, failed_at(update, "CheckRollout", previous=revision(first)))

    # Then the Ingress and Service it added are gone again, and the Deployment remains
    assert result.compensated == [
        "app fargate/demo-app rolled back to demo-app-1",
        "Ingress fargate/demo-app (pruned)",
        "Service fargate/demo-app (pruned)",
    ]
    assert [emulator.objects(kind, "fargate") for kind in ("Service", "Ingress")] == [[], []]
    assert len(emulator.objects("Deployment", "fargate")) == 1


def our_app_without_exposure(settings: Settings) -> dict[str, Any]:
    event = step_event(fargateProfileName=PROFILE)
    event["request"] = {k: v for k, v in event["request"].items() if k not in ("port", "expose")}
    apply_app(settings, parse(ApplyAppEvent, event), client.DEFAULT_APIS)
    return event


def test_a_rollback_that_cannot_apply_leaves_the_app_in_place_and_says_so(
    emulator: KubeEmulator, settings: Settings, deleted_profiles: list[str]
) -> None:
    # Given the app running, and another manager that took its container image, so both the update and the
    # rollback conflict with it
    first = our_app(settings)
    api = client.DEFAULT_APIS.get("blog", REGION)
    other_image = first["image"]["cached"].replace("ab" * 32, "cd" * 32)
    api.apps.patch_namespaced_deployment(
        "demo-app",
        "fargate",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "demo-app"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": other_image}]}}},
        },
        field_manager="platform-team",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    update = an_update(first, cpu="500m")

    # When compensating the update that failed in ApplyApp
    result = compensate(settings, failed_at(update, "ApplyApp", previous=revision(first)))

    # Then nothing is deleted: the objects stay, the failed rollback is a leftover naming the conflict
    assert result.rolled_back_to is None
    assert [len(emulator.objects(kind, "fargate")) for kind in ("Deployment", "Service", "Ingress")] == [1, 1, 1]
    [leftover] = result.leftovers
    assert leftover.startswith("the objects of app fargate/demo-app (to roll back to demo-app-1) (could not be undone")
    assert "platform-team" in leftover
    assert json.loads(result.cause)["compensationFailed"] is True
