"""The API resources the emulator serves, and the ``Status`` bodies of its errors.

Error bodies follow the Kubernetes API conventions ("Response Status Kind", sig-architecture/api-conventions.md):
``{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message", "reason", "details",
"code"}``, with ``reason`` one of the ``StatusReason`` values and ``details`` naming the object (``name``, ``group``,
``kind`` — the resource's plural for NotFound/AlreadyExists, as apimachinery ``errors.NewNotFound`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    # "all" is the category ``kubectl get all`` expands through discovery
    categories: tuple[str, ...] = ()
    # the subresources served: status (writes status only), scale (autoscaling/v1 Scale)
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``, ``services``: how apimachinery names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


# Short names, categories and subresources as a 1.31 API server lists them (``kubectl api-resources``).
RESOURCES = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), (), ("status",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), (), ("status",)),
    ResourceType("", "v1", "pods", "Pod", True, ("po",), ("all",), ("status",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("all",), ("status",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("all",), ("status", "scale")),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",), ("status", "scale")),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), (), ("status",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", namespaced=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", namespaced=True),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}


class ApiError(Exception):
    """An API failure; ``body`` is the ``Status`` object the real API server would send."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details is not None:
            self.body["details"] = details


def _details(resource: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    return details


def not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists', _details(resource, name))


def invalid(resource: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid: ``<Kind>.<group> "<name>" is invalid: <field>: <message>`` with one cause per field."""
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.kind
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{resource.qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, what: str) -> ApiError:
    """A non-resource request refused (``forbiddenMessage`` of the API server for a path)."""
    return ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path {what}', {})


def method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({method})"
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}")


def success(resource: ResourceType, name: str, uid: str) -> dict[str, Any]:
    """The ``Status`` a DELETE answers when the object is gone at once (no finalizers)."""
    details = _details(resource, name)
    details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def conflict(resource: ResourceType, name: str) -> ApiError:
    """409 for an update whose resourceVersion is not the stored one (optimistic concurrency)."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been modified; please apply '
        "your changes to the latest version and try again",
        _details(resource, name),
    )


def not_emulated(what: str) -> ApiError:
    """What a container runtime would answer (logs, exec, attach, port-forward): the emulator runs no containers."""
    return ApiError(
        400,
        "BadRequest",
        f"{what} is not emulated: the sandbox's Kubernetes emulator runs no containers (docs/sandbox.md, "
        '"kubectl against the sandbox")',
    )


def not_acceptable(accept: str) -> ApiError:
    """406: no representation in the media types the client accepts (the emulator serves no protobuf)."""
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json ({accept})")
