"""The Kubernetes objects of an app, built from the request: pure functions, validated before anything is sent.

- Namespace: applied first, so that a missing namespace is created rather than failing every other object with 404.
- Deployment: pod labels are ``app.kubernetes.io/name`` plus the request's labels (the Fargate profile selector
  matches namespace + those labels); the image is the cached ``…@sha256:`` reference, so every replica runs the
  bytes that were warmed; requests and limits are both the request's cpu/memory (below).
- Service (with ``port``): ClusterIP, selecting the pods by ``app.kubernetes.io/name``.
- Ingress (with ``expose.ingress``): for the AWS Load Balancer Controller, ``ingressClassName: alb`` and
  ``target-type: ip`` — the only target type that reaches Fargate pods (there is no node port to target).

Limits equal requests on purpose: Fargate sizes the micro-VM from the larger of each container's requests and limits,
rounded up to a Fargate size, so limits above the requests would silently buy (and bill) a bigger size than the
request says, and limits below them are rejected. Equal values also give the pod the Guaranteed QoS class.

The execution ARN and the caller (who asked: an IAM principal ARN from the API, or ``console``) annotate the objects,
not the pod template: a change in the template restarts every pod, and a re-run of the same request must not.
"""

from __future__ import annotations

import re
from typing import Any

from fargate_app.config import MANAGED_BY
from fargate_app.errors import ManifestInvalid, truncate
from fargate_app.models import (
    APP_NAME_LABEL,
    CALLER,
    DNS1123_LABEL,
    LABEL_VALUE,
    MANAGED_BY_LABEL,
    ProvisionRequest,
    validate_label_key,
    validate_label_value,
)

EXECUTION_ARN_ANNOTATION = "fargate-app.io/execution-arn"
CALLER_ANNOTATION = "fargate-app.io/caller"
# A pod matching several Fargate profiles goes to the one this label names (EKS user guide, "Fargate profile"):
# under the shared strategy every profile of the cluster selects every managed pod, whatever its subnets.
FARGATE_PROFILE_LABEL = "eks.amazonaws.com/fargate-profile"
CONTAINER_NAME = "app"
PORT_NAME = "http"
ALB_SCHEME_ANNOTATION = "alb.ingress.kubernetes.io/scheme"
ALB_TARGET_TYPE_ANNOTATION = "alb.ingress.kubernetes.io/target-type"
# A Step Functions execution ARN (standard or express); anything else would be free text in an annotation.
_EXECUTION_ARN = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:(execution|express):[\w.:-]{1,240}$")
# What the cache step returns: a repository in a private ECR registry, pinned by digest.
_CACHED_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")


def _labels(request: ProvisionRequest) -> dict[str, str]:
    """Labels of every object: the pod labels plus who manages it."""
    labels = {**request.pod_labels, MANAGED_BY_LABEL: MANAGED_BY}
    for key, value in labels.items():
        # The request model checked these already; checking again here keeps a model built without validation
        # (model_construct) from smuggling anything into the manifests.
        try:
            validate_label_key(key)
            validate_label_value(key, value)
        except ValueError as exc:  # both match whole strings: a trailing newline is refused too
            raise ManifestInvalid(f"app {request.app}: {exc}") from None
    return labels


def _metadata(request: ProvisionRequest, execution_arn: str, caller: str, **extra_annotations: str) -> dict[str, Any]:
    if not _EXECUTION_ARN.fullmatch(execution_arn):
        raise ManifestInvalid(f"app {request.app}: the execution ARN is not a Step Functions execution ARN")
    if not CALLER.fullmatch(caller):
        raise ManifestInvalid(f"app {request.app}: the caller is neither 'console' nor an IAM principal ARN")
    return {
        "name": request.app,
        "namespace": request.namespace,
        "labels": _labels(request),
        "annotations": {EXECUTION_ARN_ANNOTATION: execution_arn, CALLER_ANNOTATION: caller, **extra_annotations},
    }


def namespace_manifest(request: ProvisionRequest) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": request.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
    }


def deployment_manifest(
    request: ProvisionRequest, image: str, metadata: dict[str, Any], fargate_profile: str | None
) -> dict[str, Any]:
    """Raises: ManifestInvalid when the image is not a digest-pinned private reference or a label is malformed."""
    if not _CACHED_IMAGE.fullmatch(image):
        raise ManifestInvalid(
            f"app {request.app}: the image must be the cached reference pinned by digest (<registry>/<repo>@sha256:…)"
        )
    resources = {"cpu": request.cpu, "memory": request.memory}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    if request.port is not None:
        container["ports"] = [{"name": PORT_NAME, "containerPort": request.port, "protocol": "TCP"}]
    pod_labels = _labels(request)
    if fargate_profile is not None:
        if not LABEL_VALUE.fullmatch(fargate_profile) or len(fargate_profile) > 63:
            raise ManifestInvalid(f"app {request.app}: Fargate profile name {fargate_profile!r} is not a label value")
        pod_labels[FARGATE_PROFILE_LABEL] = fargate_profile
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": request.replicas,
            # Only the app name: a selector is immutable, the request's other labels may change.
            "selector": {"matchLabels": {APP_NAME_LABEL: request.app}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [container]},
            },
        },
    }


def service_manifest(request: ProvisionRequest, execution_arn: str, caller: str) -> dict[str, Any] | None:
    if request.port is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(request, execution_arn, caller),
        "spec": {
            "type": "ClusterIP",
            "selector": {APP_NAME_LABEL: request.app},
            "ports": [{"name": PORT_NAME, "port": request.port, "targetPort": request.port, "protocol": "TCP"}],
        },
    }


def ingress_manifest(request: ProvisionRequest, execution_arn: str, caller: str) -> dict[str, Any] | None:
    ingress = request.expose.ingress if request.expose else None
    if ingress is None or request.port is None:
        return None
    annotations = {ALB_SCHEME_ANNOTATION: ingress.scheme, ALB_TARGET_TYPE_ANNOTATION: "ip"}
    backend = {"service": {"name": request.app, "port": {"number": request.port}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(request, execution_arn, caller, **annotations),
        "spec": {
            "ingressClassName": "alb",
            "rules": [{"http": {"paths": [{"path": ingress.path, "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def app_manifests(
    request: ProvisionRequest,
    image: str,
    execution_arn: str,
    caller: str = "console",
    fargate_profile: str | None = None,
) -> list[dict[str, Any]]:
    """Every object of the app, in the order they must be applied (namespace first, ingress last).

    Raises:
        ManifestInvalid: a value cannot be put in a manifest.
    """
    for field, name in (("app", request.app), ("namespace", request.namespace)):
        if len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            raise ManifestInvalid(f"{field} {name!r} is not a DNS-1123 label")
    objects = [
        namespace_manifest(request),
        deployment_manifest(request, image, _metadata(request, execution_arn, caller), fargate_profile),
        service_manifest(request, execution_arn, caller),
        ingress_manifest(request, execution_arn, caller),
    ]
    return [obj for obj in objects if obj is not None]


def schema_version_for(cluster_version: str) -> str:
    """The kubernetes-validate schema version closest to the cluster's: the newest not newer than it, else the oldest.

    Raises:
        ManifestInvalid: the cluster version is not ``<major>.<minor>``.
    """
    from kubernetes_validate.utils import all_versions

    match = re.match(r"^v?(\d+)\.(\d+)", cluster_version)
    if not match:
        raise ManifestInvalid(f"cannot validate against Kubernetes version {cluster_version!r}")
    wanted = (int(match[1]), int(match[2]))
    available = sorted({tuple(int(part) for part in v.split(".")[:2]) for v in all_versions()})
    older = [v for v in available if v <= wanted]
    chosen = older[-1] if older else available[0]
    return f"{chosen[0]}.{chosen[1]}.0"


def describe_object(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')}"


def validate_manifest(obj: dict[str, Any], cluster_version: str) -> None:
    """Check ``obj`` against the strict OpenAPI schema of the cluster's Kubernetes version (unknown fields fail).

    Raises:
        ManifestInvalid: with the schema's message and the path of the offending field.
    """
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    version = schema_version_for(cluster_version)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path) or "(root)"
        raise ManifestInvalid(
            f"{describe_object(obj)} is invalid for Kubernetes {exc.version}: {path}: {truncate(exc.message)}"
        ) from exc
    except SchemaNotFoundError as exc:
        raise ManifestInvalid(f"{describe_object(obj)}: {exc.message}") from exc
