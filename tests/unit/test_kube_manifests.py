"""The app's manifests: golden objects, strict schema validation, and nothing smuggled through labels or annotations."""

from __future__ import annotations

from typing import Any

import pytest
from request_edits import walkthrough_request

from fargate_app.errors import InvalidRequest, ManifestInvalid
from fargate_app.kube.manifests import app_manifests, schema_version_for, validate_manifest
from fargate_app.models import ProvisionRequest, parse_request

IMAGE = "111122223333.dkr.ecr.us-west-2.amazonaws.com/ecr-public/nginx/nginx@sha256:" + "0f" * 32
EXECUTION = "arn:aws:states:us-west-2:111122223333:execution:provision:demo-app-1"
CALLER = "arn:aws:sts::111122223333:assumed-role/team-a-deployer/alice"
LABELS = {
    "app.kubernetes.io/name": "demo-app",
    "tier": "web",
    "app.kubernetes.io/managed-by": "fargate-app-provisioner",
}
META = {
    "name": "demo-app",
    "namespace": "fargate",
    "labels": LABELS,
    "annotations": {"fargate-app.io/execution-arn": EXECUTION, "fargate-app.io/caller": CALLER},
}


def request(**overrides: Any) -> ProvisionRequest:
    data = walkthrough_request()
    return parse_request({**data, **overrides})


GOLDEN = [
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "fargate", "labels": {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": META,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "demo-app"}},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "500m", "memory": "1Gi"},
                            },
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        }
                    ]
                },
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": META,
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": "demo-app"},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}],
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            **META,
            "annotations": {
                "fargate-app.io/execution-arn": EXECUTION,
                "fargate-app.io/caller": CALLER,
                "alb.ingress.kubernetes.io/scheme": "internal",
                "alb.ingress.kubernetes.io/target-type": "ip",
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/shop",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "demo-app", "port": {"number": 8080}}},
                            }
                        ]
                    }
                }
            ],
        },
    },
]


def full_request() -> ProvisionRequest:
    return request(
        replicas=2,
        port=8080,
        cpu="500m",
        memory="1Gi",
        labels={"tier": "web"},
        expose={"ingress": {"scheme": "internal", "path": "/shop"}},
    )


def test_a_full_request_gives_the_golden_objects_in_apply_order():
    assert app_manifests(full_request(), IMAGE, EXECUTION, CALLER) == GOLDEN


@pytest.mark.parametrize(
    "caller",
    ["", "alice", "arn:aws:sts::111122223333:assumed-role/x/y\nrole", "arn:aws:s3:::bucket", "console "],
)
def test_a_caller_that_is_neither_console_nor_a_principal_arn_is_not_annotated(caller: str) -> None:
    with pytest.raises(ManifestInvalid, match="caller"):
        app_manifests(full_request(), IMAGE, EXECUTION, caller)


@pytest.mark.parametrize("version", ["1.29", "1.31", "1.33", "1.37"])
def test_every_object_passes_strict_validation(version):
    for manifest in app_manifests(full_request(), IMAGE, EXECUTION):
        validate_manifest(manifest, version)


def test_without_a_port_there_is_no_service_and_no_container_port():
    manifests = app_manifests(request(), IMAGE, EXECUTION)
    assert [m["kind"] for m in manifests] == ["Namespace", "Deployment"]
    assert "ports" not in manifests[1]["spec"]["template"]["spec"]["containers"][0]


def test_a_schema_violation_is_manifest_invalid_naming_the_field():
    deployment = app_manifests(full_request(), IMAGE, EXECUTION)[1]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 7
    with pytest.raises(
        ManifestInvalid, match=r"Deployment fargate/demo-app is invalid for Kubernetes 1\.31: .*imagePullPolicy"
    ):
        validate_manifest(deployment, "1.31")


UNEXPECTED = "Additional properties are not allowed"


@pytest.mark.parametrize(
    ("typo", "refusal"),
    [
        (
            lambda obj: obj["metadata"].update(label={"typo": "x"}),
            f"Namespace fargate is invalid for Kubernetes 1.31: metadata: {UNEXPECTED} ('label' was unexpected)",
        ),
        (
            lambda obj: obj.update(bogus=1),
            f"Namespace fargate is invalid for Kubernetes 1.31: (root): {UNEXPECTED} ('bogus' was unexpected)",
        ),
        (
            lambda obj: (obj.pop("metadata"), obj.update(spec={"bogus": 1})),
            f"Namespace None is invalid for Kubernetes 1.31: spec: {UNEXPECTED} ('bogus' was unexpected)",
        ),
    ],
)
def test_strict_validation_rejects_unknown_fields_naming_where(typo, refusal):
    namespace = app_manifests(request(), IMAGE, EXECUTION)[0]
    typo(namespace)
    with pytest.raises(ManifestInvalid) as refused:
        validate_manifest(namespace, "1.31")
    assert str(refused.value) == refusal


def test_a_kind_without_a_schema_is_refused_naming_the_object():
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "fargate"}}
    with pytest.raises(ManifestInvalid) as refused:
        validate_manifest(widget, "1.31")
    assert str(refused.value) == (
        "Widget fargate/w: Couldn't find schema for kind Widget with api version example.com/v1 for kubernetes "
        "version 1.31"
    )


@pytest.mark.parametrize(
    ("cluster", "schema"), [("1.24", "1.25.0"), ("1.31", "1.31.0"), ("v1.33.4-eks-1", "1.33.0"), ("1.41", "1.37.0")]
)
def test_the_cluster_version_maps_to_the_nearest_schema_not_newer_than_it(cluster, schema):
    assert schema_version_for(cluster) == schema


@pytest.mark.parametrize(
    "labels",
    [
        {"tier": "web\nkind: Secret"},
        {"tier": "web", "evil key": "x"},
        {"app.kubernetes.io/name": "other"},
        {"app.kubernetes.io/managed-by": "me"},
        {"eks.amazonaws.com/fargate-profile": "x"},
        {"tier": "a" * 64},
    ],
)
def test_label_injection_is_rejected_by_the_request(labels):
    with pytest.raises(InvalidRequest, match="labels"):
        request(labels=labels)


VALUE_RULE = "value must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
NAME_RULE = (
    "name must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"labels": {"tier": "web\nx: y"}}, f"app demo-app: label 'tier': {VALUE_RULE}"),
        ({"labels": {"tier": "web\n"}}, f"app demo-app: label 'tier': {VALUE_RULE}"),  # re.match would take it
        ({"labels": {"tier\n": "web"}}, f"app demo-app: label key 'tier\\n': {NAME_RULE}"),
        ({"labels": {"ti er": "web"}}, f"app demo-app: label key 'ti er': {NAME_RULE}"),
        ({"app": "demo-app\n"}, "app 'demo-app\\n' is not a DNS-1123 label"),
        ({"namespace": "fargate\n"}, "namespace 'fargate\\n' is not a DNS-1123 label"),
        ({"app": "a" * 64}, f"app {'a' * 64!r} is not a DNS-1123 label"),
        ({"namespace": "n" * 64}, f"namespace {'n' * 64!r} is not a DNS-1123 label"),
    ],
)
def test_a_request_built_without_validation_still_cannot_inject_anything(change, refusal):
    smuggled = ProvisionRequest.model_construct(**{**full_request().__dict__, **change})
    with pytest.raises(ManifestInvalid) as refused:
        app_manifests(smuggled, IMAGE, EXECUTION)
    assert str(refused.value) == refusal


@pytest.mark.parametrize("change", [{"app": "a" * 63}, {"namespace": "n" * 63}])
def test_names_of_63_characters_are_valid_labels(change):
    built = ProvisionRequest.model_construct(**{**full_request().__dict__, **change})
    assert [m["kind"] for m in app_manifests(built, IMAGE, EXECUTION)] == [
        "Namespace",
        "Deployment",
        "Service",
        "Ingress",
    ]


def test_a_cluster_version_that_is_not_one_is_refused_by_name():
    with pytest.raises(ManifestInvalid) as refused:
        schema_version_for("latest")
    assert str(refused.value) == "cannot validate against Kubernetes version 'latest'"


@pytest.mark.parametrize(
    "execution_arn",
    [
        "arn:aws:states:us-west-2:111122223333:execution:provision:x\nkubernetes.io/evil: y",
        "not an arn",
        "arn:aws:states:us-west-2:111122223333:stateMachine:provision",
    ],
)
def test_only_an_execution_arn_goes_into_the_annotation(execution_arn):
    with pytest.raises(ManifestInvalid, match="execution ARN"):
        app_manifests(full_request(), IMAGE, execution_arn)


@pytest.mark.parametrize("image", ["public.ecr.aws/nginx/nginx:stable", IMAGE + "\n", "nginx@sha256:abc"])
def test_only_a_digest_pinned_cached_image_is_deployed(image):
    with pytest.raises(ManifestInvalid, match="pinned by digest"):
        app_manifests(full_request(), image, EXECUTION)


def test_the_pods_name_the_fargate_profile_chosen_for_them() -> None:
    # Under the shared strategy every profile selects every managed pod: the label decides which one places it
    deployment = app_manifests(full_request(), IMAGE, EXECUTION, CALLER, "fargate-app-shared-0a1b2c3d")[1]
    assert deployment["spec"]["template"]["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == (
        "fargate-app-shared-0a1b2c3d"
    )
    assert "eks.amazonaws.com/fargate-profile" not in deployment["metadata"]["labels"]
    with pytest.raises(ManifestInvalid, match="is not a label value"):
        app_manifests(full_request(), IMAGE, EXECUTION, CALLER, "p" * 64)
    at_most = app_manifests(full_request(), IMAGE, EXECUTION, CALLER, "p" * 63)[1]  # 63: a label value's limit
    assert at_most["spec"]["template"]["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "p" * 63
