"""DeleteApp and CheckPodsGone against the emulator: idempotent teardown that leaves the namespace alone."""

from __future__ import annotations

import pytest
from kube_helpers import apis_for, fargate_scheduler, parse, step_event

from fargate_app.errors import KubernetesConflict, PollTimeout
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
    assert (gone.gone, gone.remaining, gone.attempt, gone.next_wait_seconds) == (True, 0, 1, 0)
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
    # Given a running app that was not deleted, polled at the last allowed attempt
    emulator = start_emulator(scheduler=fargate_scheduler())
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    first = check_pods_gone(settings, parse(CheckPodsGoneEvent, step_event()), apis)
    assert (first.gone, first.remaining) == (False, 1)

    # When it is polled for the last time, Then the loop ends
    with pytest.raises(PollTimeout, match="1 pod"):
        check_pods_gone(settings, parse(CheckPodsGoneEvent, step_event(attempt=settings.poll_max_attempts - 1)), apis)
