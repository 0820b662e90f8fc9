"""CheckRollout against the emulator: Running on a fargate- node, or RolloutFailed with the cluster's own words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from kube_helpers import apis_for, fargate_scheduler, parse, step_event

from fargate_app.errors import PollTimeout, RolloutFailed, RolloutNotYetReady
from fargate_app.kube.models import ApplyAppEvent, CheckRolloutEvent
from fargate_app.kube.steps import _rollout_summary, apply_app, check_rollout
from kube_emulator import PodTiming


def later(seconds: int):
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


def test_pods_matching_a_fargate_profile_run_on_fargate_nodes(start_emulator, settings):
    # Given a cluster whose Fargate profile selects namespace "fargate", and the app applied with 2 replicas
    emulator = start_emulator(scheduler=fargate_scheduler("fargate"))
    apis = apis_for(emulator)
    event = step_event()
    event["request"]["replicas"] = 2
    apply_app(settings, parse(ApplyAppEvent, event), apis)

    # When the rollout is checked
    status = check_rollout(settings, parse(CheckRolloutEvent, event), apis)

    # Then it is ready: every pod Running on its own fargate- node, like `kubectl get pods -o wide` shows
    assert (status.deployment.replicas, status.deployment.ready_replicas) == (2, 2)
    assert len(status.pods) == 2
    for pod in status.pods:
        assert pod.name.startswith("demo-app-")
        assert (pod.phase, pod.status, pod.ready) == ("Running", "Running", "1/1")
        assert pod.node is not None and pod.node.startswith("fargate-ip-10-0-1-")
        assert pod.node.endswith(".us-west-2.compute.internal")
    assert status.nodes == sorted(pod.node for pod in status.pods)
    assert {n["metadata"]["name"] for n in emulator.objects("Node")} == set(status.nodes)


def test_an_unschedulable_pod_is_reported_only_after_the_grace_period(start_emulator, settings):
    # Given a cluster with no Fargate profile for the namespace
    emulator = start_emulator(scheduler=fargate_scheduler("other-namespace"))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    event = parse(CheckRolloutEvent, step_event())

    # When it is checked within the grace period, Then it is simply not ready yet: the state's Retry checks again,
    # and the message says what the check saw
    with pytest.raises(RolloutNotYetReady) as not_yet:
        check_rollout(settings, event, apis)
    assert not_yet.value.message.startswith("deployment fargate/demo-app: 0/1 ready; demo-app-")
    assert not_yet.value.message.endswith(": Pending")

    # When it is checked after the grace period, Then RolloutFailed quotes the FailedScheduling event
    with pytest.raises(RolloutFailed) as raised:
        check_rollout(settings, event, apis, clock=later(121))
    assert "FailedScheduling" in raised.value.message
    assert "no nodes available to schedule pods" in raised.value.message
    assert "fargate/demo-app" in raised.value.message


def test_an_image_that_cannot_be_pulled_fails_the_rollout_after_the_grace_period(start_emulator, settings):
    # Given a Fargate profile for the namespace but an image the cache cannot serve
    scheduler = fargate_scheduler("fargate", image_error=lambda image: f"{image}: not found")
    emulator = start_emulator(scheduler=scheduler)
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    started = datetime.now(UTC)

    # When the rollout is checked with a grace period of zero
    with pytest.raises(RolloutFailed) as raised:
        check_rollout(
            settings.model_copy(update={"rollout_grace_seconds": 0}),
            parse(CheckRolloutEvent, step_event(startedAt=started.isoformat())),
            apis,
        )

    # Then the container's pull failure is the cause
    assert "ErrImagePull" in raised.value.message or "ImagePullBackOff" in raised.value.message
    assert "not found" in raised.value.message


def test_a_rollout_that_never_becomes_ready_ends_with_poll_timeout(start_emulator, settings):
    # Given a pod that stays without a node (a micro-VM that never comes: nothing failed, nothing progresses)
    emulator = start_emulator(scheduler=fargate_scheduler())
    emulator.scheduler.timing = PodTiming(node_seconds=10_000, start_seconds=10_000)
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    event = parse(CheckRolloutEvent, step_event())

    # When it is checked ROLLOUT_TIMEOUT_SECONDS after the objects were applied, Then the wait ends, saying what was seen
    with pytest.raises(PollTimeout) as raised:
        check_rollout(settings, event, apis, clock=later(settings.rollout_timeout_seconds + 1))
    assert raised.value.message.startswith("deployment fargate/demo-app: 0/1 ready")
    assert "ROLLOUT_TIMEOUT_SECONDS 900" in raised.value.message


def test_a_deployment_deleted_during_its_rollout_fails_it(start_emulator, settings):
    # Given a cluster where the app was never applied
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)

    # When its rollout is checked, Then RolloutFailed says the deployment is gone
    with pytest.raises(RolloutFailed, match="disappeared"):
        check_rollout(settings, parse(CheckRolloutEvent, step_event()), apis)


def a_pod_of_the_app(api, name: str, image: str) -> None:
    """A pod carrying the app's name label (a rollout's new or old pod, as the check sees it)."""
    api.core.create_namespaced_pod(
        "fargate",
        {
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "demo-app"}},
            "spec": {"containers": [{"name": "c", "image": image}], "terminationGracePeriodSeconds": 30},
        },
    )


def test_a_stuck_pod_is_found_behind_a_running_one(start_emulator, settings):
    # Given the app running, then a second pod of it whose image cannot be pulled
    scheduler = fargate_scheduler(
        "fargate", image_error=lambda image: "manifest unknown" if "broken" in image else None
    )
    emulator = start_emulator(scheduler=scheduler)
    apis = apis_for(emulator)
    event = step_event()
    apply_app(settings, parse(ApplyAppEvent, event), apis)
    a_pod_of_the_app(apis.get("blog", "us-west-2"), "demo-app-stuck", "public.ecr.aws/broken/image:1")

    # When the rollout is checked past the grace period, Then the stuck pod is named with the kubelet's words
    with pytest.raises(RolloutFailed) as raised:
        check_rollout(settings.model_copy(update={"rollout_grace_seconds": 0}), parse(CheckRolloutEvent, event), apis)
    assert raised.value.message == (
        "deployment fargate/demo-app cannot run on Fargate: pod demo-app-stuck: ErrImagePull: manifest unknown"
    )


def test_a_terminating_pod_is_not_part_of_the_rollout(start_emulator, settings):
    # Given the app running, and an old pod of it that is Terminating (its grace period of 30 s not over)
    emulator = start_emulator(scheduler=fargate_scheduler())
    emulator.api.controllers.timing = PodTiming(grace_scale=1.0)  # the kubelet's stop takes the whole 30 s
    apis = apis_for(emulator)
    event = step_event()
    apply_app(settings, parse(ApplyAppEvent, event), apis)
    api = apis.get("blog", "us-west-2")
    a_pod_of_the_app(api, "demo-app-old", "public.ecr.aws/nginx/nginx:stable")
    api.core.delete_namespaced_pod("demo-app-old", "fargate")
    assert api.core.read_namespaced_pod("demo-app-old", "fargate").metadata.deletion_timestamp is not None

    # When the rollout is checked, Then it is ready with the app's pod alone
    status = check_rollout(settings, parse(CheckRolloutEvent, event), apis)
    assert [pod.name for pod in status.pods] != [] and "demo-app-old" not in [pod.name for pod in status.pods]
    assert len(status.pods) == 1


def test_the_schedulers_latest_event_is_quoted_before_the_pods_condition(start_emulator, settings):
    # Given an unschedulable pod, and a later FailedScheduling event for it with other words than its condition
    emulator = start_emulator(scheduler=fargate_scheduler("other-namespace"))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    [pod] = emulator.objects("Pod", "fargate")
    name = pod["metadata"]["name"]
    apis.get("blog", "us-west-2").core.create_namespaced_event(
        "fargate",
        {
            "metadata": {"name": f"{name}.later"},
            "involvedObject": {"kind": "Pod", "namespace": "fargate", "name": name},
            "reason": "FailedScheduling",
            "message": "0/0 nodes are available: the latest word",
            "type": "Warning",
            "lastTimestamp": (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        },
    )
    # When checked past the grace period, Then the latest event is what the failure quotes
    with pytest.raises(RolloutFailed) as raised:
        check_rollout(settings, parse(CheckRolloutEvent, step_event()), apis, clock=later(121))
    assert raised.value.message == (
        f"deployment fargate/demo-app cannot run on Fargate: pod {name}: FailedScheduling: 0/0 nodes are available: "
        "the latest word"
    )


class CountingEvents:
    """The emulator's clients, counting the namespace event listings a check makes."""

    def __init__(self, apis):
        self.apis, self.listings = apis, 0

    def get(self, cluster, region):
        api = self.apis.get(cluster, region)
        counter = self

        class Core:
            def __getattr__(self, attribute):
                return getattr(api.core, attribute)

            def list_namespaced_event(self, *args, **kwargs):
                counter.listings += 1
                return api.core.list_namespaced_event(*args, **kwargs)

        return SimpleNamespace(apps=api.apps, core=Core(), api_client=api.api_client)


def test_the_events_are_listed_once_however_many_pods_wait(start_emulator, settings):
    # Given three pods waiting for a node that does not come (no event yet says why)
    emulator = start_emulator(scheduler=fargate_scheduler())
    emulator.scheduler.timing = PodTiming(node_seconds=10_000, start_seconds=10_000)
    apis = CountingEvents(apis_for(emulator))
    event = step_event()
    event["request"]["replicas"] = 3
    apply_app(settings, parse(ApplyAppEvent, event), apis.apis)
    assert len(emulator.objects("Pod", "fargate")) == 3
    # When the rollout is checked, Then it is not ready yet, and the namespace's events were read once
    with pytest.raises(RolloutNotYetReady):
        check_rollout(settings, parse(CheckRolloutEvent, event), apis)
    assert apis.listings == 1


def test_a_problem_as_old_as_the_grace_period_fails_the_rollout(start_emulator, settings):
    # Given a pod whose image cannot be pulled, checked exactly ROLLOUT_GRACE_SECONDS after the rollout began
    emulator = start_emulator(scheduler=fargate_scheduler("fargate", image_error=lambda image: "not found"))
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    started = datetime.now(UTC) + timedelta(seconds=5)  # after the pod's creation: the grace counts from here
    event = parse(CheckRolloutEvent, step_event(startedAt=started.isoformat()))
    just_before = started + timedelta(seconds=settings.rollout_grace_seconds - 1)
    with pytest.raises(RolloutNotYetReady):
        check_rollout(settings, event, apis, clock=lambda: just_before)
    # Then at the grace period's end it fails
    with pytest.raises(RolloutFailed):
        check_rollout(settings, event, apis, clock=lambda: started + timedelta(seconds=settings.rollout_grace_seconds))


def test_a_rollout_as_old_as_its_timeout_ends(start_emulator, settings):
    emulator = start_emulator(scheduler=fargate_scheduler())
    emulator.scheduler.timing = PodTiming(node_seconds=10_000, start_seconds=10_000)
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    started = datetime.now(UTC)
    event = parse(CheckRolloutEvent, step_event(startedAt=started.isoformat()))
    with pytest.raises(PollTimeout) as raised:
        check_rollout(
            settings, event, apis, clock=lambda: started + timedelta(seconds=settings.rollout_timeout_seconds)
        )
    assert raised.value.message.endswith(
        f"after {settings.rollout_timeout_seconds} s (ROLLOUT_TIMEOUT_SECONDS {settings.rollout_timeout_seconds}); "
        "see `kubectl describe pods` for why"
    )


def two_replicas_applied(emulator, settings):
    """The app applied with two replicas: its clients, its step event and its pods' names (sorted)."""
    apis = apis_for(emulator)
    event = step_event()
    event["request"]["replicas"] = 2
    apply_app(settings, parse(ApplyAppEvent, event), apis)
    return apis, event, sorted(pod["metadata"]["name"] for pod in emulator.objects("Pod", "fargate"))


def test_every_stuck_pod_is_named(start_emulator, settings):
    emulator = start_emulator(scheduler=fargate_scheduler("fargate", image_error=lambda image: "manifest unknown"))
    apis, event, names = two_replicas_applied(emulator, settings)
    with pytest.raises(RolloutFailed) as raised:
        check_rollout(settings.model_copy(update={"rollout_grace_seconds": 0}), parse(CheckRolloutEvent, event), apis)
    said = raised.value.message.removeprefix("deployment fargate/demo-app cannot run on Fargate: pod ")
    # each pod with the kubelet's words (ErrImagePull, then ImagePullBackOff as it retries), joined by "; "
    assert sorted(entry.split(": ")[0] for entry in said.split("; pod ")) == names


def test_a_rollout_timeout_lists_every_pod_it_saw(start_emulator, settings):
    # Given two replicas that stay without a node
    emulator = start_emulator(scheduler=fargate_scheduler())
    emulator.scheduler.timing = PodTiming(node_seconds=10_000, start_seconds=10_000)
    apis, event, names = two_replicas_applied(emulator, settings)
    # When the wait ends, then each pod is named with its status, as the API lists them (by name)
    with pytest.raises(PollTimeout) as raised:
        check_rollout(
            settings, parse(CheckRolloutEvent, event), apis, clock=later(settings.rollout_timeout_seconds + 1)
        )
    assert raised.value.message.startswith(
        f"deployment fargate/demo-app: 0/2 ready; {names[0]}: Pending; {names[1]}: Pending after "
    )


def test_a_summary_without_pods_gives_the_counts_alone() -> None:
    deployment = {"metadata": {"namespace": "fargate", "name": "web"}, "spec": {"replicas": 2}, "status": {}}
    assert _rollout_summary("fargate/web", deployment, []) == "deployment fargate/web: 0/2 ready"


def test_a_deployment_scaled_to_zero_runs_nothing_and_is_not_ready(start_emulator, settings):
    # Given the app applied, then scaled to 0 by another manager (`kubectl scale --replicas=0`): settled, no pod
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    event = step_event()
    apply_app(settings, parse(ApplyAppEvent, event), apis)
    apis.get("blog", "us-west-2").apps.patch_namespaced_deployment_scale(
        "demo-app", "fargate", {"spec": {"replicas": 0}}
    )
    assert emulator.objects("Pod", "fargate") == []
    # When the rollout is checked, then it waits: no pod runs the app on Fargate
    with pytest.raises(RolloutNotYetReady) as waiting:
        check_rollout(settings, parse(CheckRolloutEvent, event), apis)
    assert waiting.value.message.startswith("deployment fargate/demo-app: 0/0 ready")
