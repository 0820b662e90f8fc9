"""ApplyApp against the emulator with the official client: create, idempotence, conflicts, invalid objects, auth."""

from __future__ import annotations

from typing import Any

import pytest
from kube_helpers import CACHED_IMAGE, CALLER_ARN, EXECUTION_ARN, apis_for, parse, request_json, step_event

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


def _apply_as(api: Any, manager: str, spec: dict[str, Any]) -> None:
    """Another field manager takes ``spec`` fields of the app's Deployment with a forced server-side apply."""
    api.apps.patch_namespaced_deployment(
        "demo-app",
        "fargate",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo-app"}, "spec": spec},
        field_manager=manager,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def test_a_field_owned_by_another_manager_is_a_conflict_naming_the_field(start_emulator, settings):
    # Given a deployment whose container image another manager set with server-side apply
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    api = apis.get("blog", "us-west-2")
    other_image = CACHED_IMAGE.replace("ab" * 32, "cd" * 32)
    _apply_as(api, "platform-team", {"template": {"spec": {"containers": [{"name": "app", "image": other_image}]}}})

    # When the provisioner applies its own image
    with pytest.raises(KubernetesConflict) as raised:
        apply_app(settings, parse(ApplyAppEvent, step_event()), apis)

    # Then the error names the field and the manager that owns it, and the other value stays
    assert '.spec.template.spec.containers[name="app"].image' in raised.value.message
    assert "platform-team" in raised.value.message
    containers = _stored(emulator, "Deployment", "demo-app")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == other_image


# The manager of a write that names none is its user agent up to the first "/" (the API server's default): the Python
# client's is "OpenAPI-Generator/<version>/python".
@pytest.mark.parametrize(
    ("scaler", "manager"), [("server-side apply", "platform-team"), ("scale subresource", "OpenAPI-Generator")]
)
def test_replicas_another_manager_owns_are_left_to_it(start_emulator, settings, scaler, manager):
    # Given an applied app that an autoscaler (SSA) or `kubectl scale` (the scale subresource) scaled to 3
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    api = apis.get("blog", "us-west-2")
    if scaler == "server-side apply":
        _apply_as(api, "platform-team", {"replicas": 3})
    else:
        api.apps.patch_namespaced_deployment_scale("demo-app", "fargate", {"spec": {"replicas": 3}})

    # When an update of the app (another cpu) is applied with its own replica count
    event = step_event()
    event["request"]["cpu"] = "500m"
    applied = apply_app(settings, parse(ApplyAppEvent, event), apis)

    # Then the update lands, the replica count stays the other manager's, and the result says who owns it
    deployment = _stored(emulator, "Deployment", "demo-app")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "500m"
    assert applied.replicas_managed_by == manager != FIELD_MANAGER


def test_a_changed_port_replaces_the_old_one(start_emulator, settings):
    # Given an app applied with port 80
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)

    # When an update moves it to port 8080
    event = step_event()
    event["request"]["port"] = 8080
    apply_app(settings, parse(ApplyAppEvent, event), apis)

    # Then the container and the Service expose 8080 only (no port left behind, none without its number)
    container = _stored(emulator, "Deployment", "demo-app")["spec"]["template"]["spec"]["containers"][0]
    assert [port["containerPort"] for port in container["ports"]] == [8080]
    assert [port["port"] for port in _stored(emulator, "Service", "demo-app")["spec"]["ports"]] == [8080]


def test_objects_a_new_revision_drops_are_deleted_but_not_someone_elses(start_emulator, settings):
    # Given an app applied with a port and an ingress
    emulator = start_emulator()
    apis = apis_for(emulator)
    apply_app(settings, parse(ApplyAppEvent, step_event()), apis)

    # When an update drops the ingress
    event = step_event()
    del event["request"]["expose"]
    dropped_ingress = apply_app(settings, parse(ApplyAppEvent, event), apis)

    # Then the Ingress is gone and the Service stays
    assert [(ref.kind, ref.name) for ref in dropped_ingress.pruned] == [("Ingress", "demo-app")]
    assert emulator.objects("Ingress", "fargate") == []
    assert [obj["metadata"]["name"] for obj in emulator.objects("Service", "fargate")] == ["demo-app"]

    # When a Service of the app's name that someone else made exists and the next update drops the port
    api = apis.get("blog", "us-west-2")
    api.core.delete_namespaced_service("demo-app", "fargate")
    service = {"metadata": {"name": "demo-app"}, "spec": {"ports": [{"port": 81}]}}
    api.core.create_namespaced_service("fargate", service)
    del event["request"]["port"]
    dropped_port = apply_app(settings, parse(ApplyAppEvent, event), apis)

    # Then that Service is left in place: only objects the provisioner manages are pruned
    assert dropped_port.pruned == []
    assert [obj["spec"]["ports"][0]["port"] for obj in emulator.objects("Service", "fargate")] == [81]


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


def test_the_result_says_which_ingress_exposes_the_app(start_emulator, settings):
    from fargate_app.kube.models import ExposedIngress

    emulator = start_emulator()
    apis = apis_for(emulator)
    exposed = apply_app(settings, parse(ApplyAppEvent, step_event()), apis)
    assert exposed.ingress == ExposedIngress(
        namespace="fargate", name="demo-app", scheme="internet-facing", path="/", port=80
    )
    internal = apply_app(settings, parse(ApplyAppEvent, step_event(request=request_json(expose=None))), apis)
    assert internal.ingress is None
