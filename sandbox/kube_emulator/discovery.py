"""What clients read before they act: ``/version``, the health probes and API discovery.

Discovery is the legacy (unaggregated) form every client falls back to: ``/api``, ``/apis``, and one
``APIResourceList`` per group version with short names, categories and subresources, which is how kubectl resolves
``deploy``, ``po`` or ``all`` (Kubernetes API concepts, "Discovery API").
"""

from __future__ import annotations

from typing import Any

from kube_emulator.resources import RESOURCES, ResourceType

HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
# The verbs the server implements for every resource it serves (no deletecollection).
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# pods/<sub> a client may ask for; answered 400 "not emulated" (resources.not_emulated)
POD_RUNTIME_SUBRESOURCES = {"log": ("Pod", ["get"]), "exec": ("PodExecOptions", ["create", "get"]),
                            "attach": ("PodAttachOptions", ["create", "get"]),
                            "portforward": ("PodPortForwardOptions", ["create", "get"])}  # fmt: skip


def version_info(version: str) -> dict[str, str]:
    major, minor = version.split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{major}.{minor}.0-eks-emulated",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _subresource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    entries = []
    for sub in resource.subresources:
        entry = {"name": f"{resource.plural}/{sub}", "singularName": "", "namespaced": resource.namespaced}
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale", verbs=["get", "patch", "update"])
        else:
            entry.update(kind=resource.kind, verbs=["get", "patch", "update"])
        entries.append(entry)
    if resource.plural == "pods":
        for sub, (kind, verbs) in POD_RUNTIME_SUBRESOURCES.items():
            entries.append(
                {"name": f"pods/{sub}", "singularName": "", "namespaced": True, "kind": kind, "verbs": verbs}
            )
    return entries


def resource_list(group_version: str) -> dict[str, Any] | None:
    served = [r for r in RESOURCES if r.api_version == group_version]
    if not served:
        return None
    listed: list[dict[str, Any]] = []
    for resource in served:
        entry: dict[str, Any] = {
            "name": resource.plural,
            "singularName": resource.kind.lower(),
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": VERBS,
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        listed.append(entry)
        listed.extend(_subresource_entries(resource))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": listed}


def document(path: str, version: str) -> dict[str, Any] | None:
    """The discovery document at ``path``, or None when ``path`` is not a discovery path."""
    if path == "/version":
        return version_info(version)
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                }
                for g, v in groups
            ],
        }
    if path.startswith("/api/"):
        return resource_list(path[len("/api/") :])
    if path.startswith("/apis/") and path.count("/") == 3:
        return resource_list(path[len("/apis/") :])
    return None
