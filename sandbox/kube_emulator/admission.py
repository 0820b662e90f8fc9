"""What the API server does to an object between decoding and storing it: validation, then defaulting.

Validation uses kubernetes-validate's strict schemas for the emulated Kubernetes version (unknown fields are errors,
as with ``kubectl --validate=strict`` / field validation Strict); a failure is 422 Invalid with one cause per problem.
Defaulting adds the server-side defaults the steps and kubectl would see (a subset of pkg/apis/*/v1/defaults.go).
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from typing import Any

import jsonschema

from kube_emulator.resources import ApiError, ResourceType, invalid
from kube_emulator.schemas import strict_validator


def validate(resource: ResourceType, obj: dict[str, Any], version: str) -> None:
    """Raises: ApiError 422 Invalid naming the offending field, as the API server's field validation does."""
    checked = {k: v for k, v in obj.items() if k != "status"}
    metadata = {k: v for k, v in checked.get("metadata", {}).items() if k != "managedFields"}
    checked["metadata"] = metadata
    try:
        strict_validator(version, resource.kind, resource.api_version).validate(checked)
    except jsonschema.ValidationError as exc:
        field = ".".join(str(part) for part in exc.path) or "<root>"
        raise invalid(
            resource,
            str(metadata.get("name", "")),
            [{"reason": "FieldValueInvalid", "message": f"Invalid value: {exc.message}", "field": field}],
        ) from exc


def check_identity(resource: ResourceType, obj: dict[str, Any], namespace: str | None, name: str | None) -> None:
    """The object's apiVersion/kind/namespace/name must agree with the URL (apiserver: 400 BadRequest)."""
    metadata = obj.get("metadata") or {}
    if obj.get("kind") not in (None, resource.kind) or obj.get("apiVersion") not in (None, resource.api_version):
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version "
            f"({resource.api_version})",
        )
    if name is not None and metadata.get("name") not in (None, name):
        raise ApiError(
            400,
            "BadRequest",
            f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})",
        )
    if resource.namespaced and metadata.get("namespace") not in (None, namespace):
        raise ApiError(
            400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request"
        )


class Defaulter:
    """Server-side defaults; also allocates Service ClusterIPs from 10.100.0.0/16 (the EKS default range)."""

    def __init__(self) -> None:
        self._cluster_ips = itertools.islice(ipaddress.ip_network("10.100.0.0/16").hosts(), 100, None)
        self._lock = threading.Lock()

    def apply(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        getattr(self, f"_{resource.plural}", lambda obj: None)(obj)

    @staticmethod
    def _pod_spec(spec: dict[str, Any]) -> None:
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("securityContext", {})
        for container in spec.get("containers") or []:
            image = str(container.get("image", ""))
            latest = "@" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"))
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")

    def _namespaces(self, obj: dict[str, Any]) -> None:
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})

    def _deployments(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )
        self._pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))

    def _services(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if "clusterIP" not in spec:
            with self._lock:
                spec["clusterIP"] = str(next(self._cluster_ips))
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})

    @staticmethod
    def _ingresses(obj: dict[str, Any]) -> None:
        obj.setdefault("status", {"loadBalancer": {}})
