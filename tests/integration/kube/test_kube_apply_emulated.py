"""ApplyApp against the emulator with the official client: create, idempotence, conflicts, invalid objects, auth."""

from __future__ import annotations

from typing import Any

import pytest
from kube_helpers import CACHED_IMAGE, CALLER_ARN, EXECUTION_ARN, apis_for, parse, step_event

from fargate_app.errors import KubernetesConflict, KubernetesForbidden, ManifestInvalid
from fargate_app.kube import steps
from fargate_app.kube.models import ApplyAppEvent
from fargate_app.kube.steps import FIELD_MANAGER, apply_app


def _stored(emulator: Any, kind: str, name: str) -> dict[str, Any]:
    return next(obj for obj in emulator.objects(kind) if obj["metadata"]["name"] == name)


def test_apply_creates_every_object_then_changes_nothing_when_repeated(start_emulator, settings):
    # Given an empty cluster and a request with a port and an ingress
    emulator = start_emulator()
    apis = apis_for(emulator)
    event = parse(ApplyAppEvent, step_event())

    # When the step runs
    first = apply_app(settings, event, apis)

    # Then the namespace, deployment, service and ingress exist, written by our field manager
    assert [(o.kind, o.name) for o in first.objects] == [
        ("Namespace", "fargate"),
        ("Deployment", "demo-app"),
        ("Service", "demo-app"),
        ("Ingress", "demo-app"),
    ]
    assert first.namespace_created is True
    deployment = _stored(emulator, "Deployment", "demo-app")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == CACHED_IMAGE
    assert deployment["metadata"]["annotations"]["fargate-app.io/execution-arn"] == EXECUTION_ARN
    assert {entry["manager"] for entry in deployment["metadata"]["managedFields"]} == {FIELD_MANAGER}
    assert _stored(emulator, "Service", "demo-app")["spec"]["clusterIP"].startswith("10.100.")
    before = {kind: _stored(emulator, kind, "demo-app")["metadata"] for kind in ("Deployment", "Service", "Ingress")}

    # When it runs again with the same input
    second = apply_app(settings, event, apis)

    # Then nothing changed: same resourceVersion and generation, and the existing namespace was left alone
    assert second.namespace_created is False
    assert [o.kind for o in second.objects] == ["Deployment", "Service", "Ingress"]
    for kind, metadata in before.items():
        now = _stored(emulator, kind, "demo-app")["metadata"]
        assert (now["resourceVersion"], now.get("generation")) == (
            metadata["resourceVersion"],
            metadata.get("generation"),
        )


def test_a_changed_request_bumps_the_generation(start_emulator, settings):
    # Given an applied app
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    generation = _stored(emulator, "Deployment", "demo-app")["metadata"]["generation"]

    # When it is applied with two replicas
    event = step_event()
    event["request"]["replicas"] = 2
    apply_app(settings, parse(ApplyAppEvent, event), apis)

    # Then the deployment moved to the next generation with the new spec
    deployment = _stored(emulator, "Deployment", "demo-app")
    assert deployment["metadata"]["generation"] == generation + 1
    assert deployment["spec"]["replicas"] == 2


def test_a_field_owned_by_another_manager_is_a_conflict_naming_the_field(start_emulator, settings):
    # Given a deployment whose replicas another manager set to 3 with server-side apply
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    api = apis.get("blog", "us-west-2")
    api.apps.patch_namespaced_deployment(
        "demo-app",
        "fargate",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo-app"}, "spec": {"replicas": 3}},
        field_manager="platform-team",
        force=True,
        _content_type="application/apply-patch+yaml",
    )

    # When the provisioner applies its own replica count
    with pytest.raises(KubernetesConflict) as raised:
        apply_app(settings, parse(ApplyAppEvent, step_event()), apis)

    # Then the error names the field and the manager that owns it, and the other value stays
    assert ".spec.replicas" in raised.value.message
    assert "platform-team" in raised.value.message
    assert _stored(emulator, "Deployment", "demo-app")["spec"]["replicas"] == 3


def test_an_object_the_api_server_rejects_is_manifest_invalid(start_emulator, settings, monkeypatch):
    # Given a manifest with a field the schema does not know, slipped past our own validation
    emulator = start_emulator()
    build = steps.app_manifests

    def with_unknown_field(*args: Any) -> list[dict[str, Any]]:
        manifests = build(*args)
        manifests[1]["spec"]["replicaCount"] = 2
        return manifests

    monkeypatch.setattr(steps, "app_manifests", with_unknown_field)
    monkeypatch.setattr(steps, "validate_manifest", lambda manifest, version: None)

    # When it is applied
    with pytest.raises(ManifestInvalid) as raised:
        apply_app(settings, parse(ApplyAppEvent, step_event()), apis_for(emulator))

    # Then the API server's 422 message, naming the object, is the cause
    assert 'Deployment.apps "demo-app" is invalid' in raised.value.message
    assert "replicaCount" in raised.value.message


def test_our_own_validation_stops_an_invalid_object_before_it_is_sent(start_emulator, settings, monkeypatch):
    # Given a manifest builder that produces a wrongly typed field
    emulator = start_emulator()
    build = steps.app_manifests

    def with_string_replicas(*args: Any) -> list[dict[str, Any]]:
        manifests = build(*args)
        manifests[1]["spec"]["replicas"] = "two"
        return manifests

    monkeypatch.setattr(steps, "app_manifests", with_string_replicas)

    # When the step runs
    with pytest.raises(ManifestInvalid) as raised:
        apply_app(settings, parse(ApplyAppEvent, step_event()), apis_for(emulator))

    # Then the schema message names the field, and nothing reached the cluster
    assert "spec.replicas" in raised.value.message
    assert emulator.objects("Deployment") == []
    assert emulator.objects("Namespace") == []


def test_a_token_signed_for_another_cluster_is_refused(start_emulator, settings):
    # Given an emulator of cluster "blog", and a client whose tokens are presigned for cluster "shop"
    emulator = start_emulator()
    apis = apis_for(emulator, cluster_name="blog")
    event = step_event()
    event["request"]["cluster"] = "shop"

    # When the step runs, Then the 401 is KubernetesForbidden, and the token is not in the message
    with pytest.raises(KubernetesForbidden) as raised:
        apply_app(settings, parse(ApplyAppEvent, event), apis)
    assert "Unauthorized" in raised.value.message
    assert "k8s-aws-v1" not in raised.value.message
    assert CALLER_ARN not in raised.value.message
