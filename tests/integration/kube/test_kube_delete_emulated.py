"""DeleteApp and CheckPodsGone against the emulator: idempotent teardown that leaves the namespace alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kube_helpers import apis_for, fargate_scheduler, parse, request_json, step_event

from fargate_app.errors import KubernetesConflict, PodsNotYetGone, PollTimeout
from fargate_app.kube.models import ApplyAppEvent, CheckPodsGoneEvent
from fargate_app.kube.steps import apply_app, check_pods_gone, delete_app


def test_delete_removes_the_app_and_its_pods_and_is_fine_twice(start_emulator, settings):
    # Given a running app
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    event = parse(ApplyAppEvent, step_event())
    apply_app(settings, event, apis)
    assert len(emulator.objects("Pod", "fargate")) == 1

    # When it is deleted
    first = delete_app(settings, event.request, apis)

    # Then its ingress, service and deployment are gone, then its pods and their Fargate node; the namespace stays
    assert [ref.kind for ref in first.deleted] == ["Ingress", "Service", "Deployment"]
    assert first.already_gone == []
    gone = check_pods_gone(settings, parse(CheckPodsGoneEvent, step_event()), apis)
    assert (gone.namespace, gone.name) == ("fargate", "demo-app")
    assert emulator.objects("Node") == []
    assert [ns["metadata"]["name"] for ns in emulator.objects("Namespace")] == ["fargate"]

    # When it is deleted again, Then everything is reported as already gone
    second = delete_app(settings, event.request, apis)
    assert second.deleted == []
    assert [ref.kind for ref in second.already_gone] == ["Ingress", "Service", "Deployment"]


def test_an_object_of_the_same_name_not_managed_by_us_is_left_in_place(start_emulator, settings):
    # Given a Service "demo-app" that someone else created in the namespace
    emulator = start_emulator()
    apis = apis_for(emulator)
    api = apis.get("blog", "us-west-2")
    api.core.create_namespace({"metadata": {"name": "fargate"}})
    api.core.create_namespaced_service(
        "fargate", {"metadata": {"name": "demo-app"}, "spec": {"ports": [{"port": 80}]}}, field_manager="someone"
    )

    # When the app is deleted, Then the foreign object is refused, named, and kept
    with pytest.raises(KubernetesConflict, match="Service fargate/demo-app is not managed by"):
        delete_app(settings, parse(ApplyAppEvent, step_event()).request, apis)
    assert [s["metadata"]["name"] for s in emulator.objects("Service", "fargate")] == ["demo-app"]


def test_pods_that_remain_too_long_end_with_poll_timeout(start_emulator, settings):
    # Given a running app that was not deleted
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    event = parse(CheckPodsGoneEvent, step_event())

    # When it is checked, Then its pod is named as not gone yet (the state's Retry checks again)
    with pytest.raises(PodsNotYetGone, match=r"1 pod\(s\) of fargate/demo-app not gone yet: demo-app-\S+ \(Running\)"):
        check_pods_gone(settings, event, apis)

    # When it is still there PODS_GONE_TIMEOUT_SECONDS after the deletes, Then the wait ends
    def later() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=settings.pods_gone_timeout_seconds + 1)

    with pytest.raises(PollTimeout, match="1 pod"):
        check_pods_gone(settings, event, apis, clock=later)


def test_every_remaining_pod_is_named_and_the_wait_ends_at_the_timeout_exactly(start_emulator, settings):
    # Given a running app of two replicas that was not deleted
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    two = step_event(request={**step_event()["request"], "replicas": 2})
    apply_app(settings, parse(ApplyAppEvent, two), apis)
    started = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    event = parse(CheckPodsGoneEvent, {**two, "startedAt": started.isoformat()})
    pods = sorted(pod["metadata"]["name"] for pod in emulator.objects("Pod", "fargate"))

    # When it is checked just before the timeout, Then both pods are listed and the Retry goes on
    def just_before() -> datetime:
        return started + timedelta(seconds=settings.pods_gone_timeout_seconds - 1)

    with pytest.raises(PodsNotYetGone) as waiting:
        check_pods_gone(settings, event, apis, clock=just_before)
    assert sorted(str(waiting.value).split(": ", 1)[1].split(", ")) == [f"{pod} (Running)" for pod in pods]

    # When it is checked at the timeout, Then the wait ends
    def at_the_timeout() -> datetime:
        return started + timedelta(seconds=settings.pods_gone_timeout_seconds)

    with pytest.raises(
        PollTimeout, match=rf"2 pod\(s\) of fargate/demo-app still exist {settings.pods_gone_timeout_seconds:.0f} s"
    ):
        check_pods_gone(settings, event, apis, clock=at_the_timeout)


def test_pods_of_another_app_in_the_namespace_do_not_hold_up_the_teardown(start_emulator, settings):
    # Given two apps running in the namespace
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    web = step_event(request=request_json(app="web", expose=None))
    apply_app(settings, parse(ApplyAppEvent, web), apis)
    # When one is deleted, then its pods are gone while the other's still run
    delete_app(settings, parse(ApplyAppEvent, step_event()).request, apis)
    gone = check_pods_gone(settings, parse(CheckPodsGoneEvent, step_event()), apis)
    assert (gone.namespace, gone.name) == ("fargate", "demo-app")
    assert [pod["metadata"]["labels"]["app.kubernetes.io/name"] for pod in emulator.objects("Pod", "fargate")] == [
        "web"
    ]
