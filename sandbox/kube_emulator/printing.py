"""Server-side printing: the ``Table`` a client gets when it asks for ``Accept: application/json;as=Table;...``.

kubectl asks for Tables for ``get`` and prints their cells; the columns and cell texts follow the API server's
printers (``pkg/printers/internalversion/printers.go``: printPod, printNode, printDeployment, printReplicaSet,
printService, printIngress, printEvent, printNamespace) and, for kinds without a printer, the default convertor
(``Name``, ``Created At``). Ages are ``duration.HumanDuration`` (``k8s.io/apimachinery/pkg/util/duration``).
Priority-1 columns are the ones ``-o wide`` adds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Column = tuple[str, str, int]  # (name, type, priority)
NONE = "<none>"


def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration: ``45s``, ``3m7s``, ``15m``, ``4h20m``, ``2d3h``…"""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _containers(spec: dict[str, Any]) -> tuple[str, str]:
    containers = spec.get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(selector: dict[str, Any] | None) -> str:
    labels = (selector or {}).get("matchLabels", selector or {}) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


def _pod_status(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        _pod_status(pod),
        str(restarts),
        age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or NONE,
        (pod.get("spec") or {}).get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        NONE,
    ]


def _node(node: dict[str, Any]) -> list[Any]:
    status = node.get("status") or {}
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
    roles = sorted(
        key.split("/", 1)[1]
        for key in node["metadata"].get("labels") or {}
        if key.startswith("node-role.kubernetes.io/")
    )
    info = status.get("nodeInfo") or {}
    addresses = {a["type"]: a["address"] for a in status.get("addresses") or []}
    return [
        node["metadata"]["name"],
        "Ready" if ready else "NotReady",
        ",".join(roles) or NONE,
        age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", NONE),
        addresses.get("ExternalIP", NONE),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _deployment(deployment: dict[str, Any]) -> list[Any]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"
    return _workload(deployment, [ready, status.get("updatedReplicas", 0), status.get("availableReplicas", 0)])


def _replica_set(replica_set: dict[str, Any]) -> list[Any]:
    spec, status = replica_set.get("spec") or {}, replica_set.get("status") or {}
    return _workload(replica_set, [spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0)])


def _workload(workload: dict[str, Any], counts: list[Any]) -> list[Any]:
    """NAME, the kind's replica counts, AGE, and the wide columns CONTAINERS, IMAGES, SELECTOR."""
    spec = workload.get("spec") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    metadata = workload["metadata"]
    return [
        metadata["name"],
        *counts,
        age(metadata.get("creationTimestamp")),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _service(service: dict[str, Any]) -> list[Any]:
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("hostname") or i.get("ip", "") for i in ingress) or (
        "<pending>" if kind == "LoadBalancer" else NONE
    )
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        service["metadata"]["name"],
        kind,
        spec.get("clusterIP") or NONE,
        external,
        ports or NONE,
        age(service["metadata"].get("creationTimestamp")),
        _selector(spec.get("selector")),
    ]


def _ingress(ingress: dict[str, Any]) -> list[Any]:
    spec = ingress.get("spec") or {}
    hosts = ",".join(rule.get("host", "*") for rule in spec.get("rules") or []) or "*"
    balancer = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [
        ingress["metadata"]["name"],
        spec.get("ingressClassName") or NONE,
        hosts,
        ",".join(i.get("hostname") or i.get("ip", "") for i in balancer),
        "443" if spec.get("tls") else "80",
        age(ingress["metadata"].get("creationTimestamp")),
    ]


def _event(event: dict[str, Any]) -> list[Any]:
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    return [
        age(last),
        event.get("type", ""),
        event.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        ", ".join(v for v in (source.get("component"), source.get("host")) if v),
        event.get("message", ""),
        age(event.get("firstTimestamp") or last),
        event.get("count", 1),
        event["metadata"]["name"],
    ]


def _namespace(namespace: dict[str, Any]) -> list[Any]:
    return [
        namespace["metadata"]["name"],
        (namespace.get("status") or {}).get("phase", "Active"),
        age(namespace["metadata"].get("creationTimestamp")),
    ]


def _default(obj: dict[str, Any]) -> list[Any]:
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")]


PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any]], list[Any]]]] = {
    "Pod": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
         ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
         ("Readiness Gates", "string", 1)],
        _pod,
    ),
    "Node": (
        [("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
         ("Version", "string", 0), ("Internal-IP", "string", 1), ("External-IP", "string", 1),
         ("OS-Image", "string", 1), ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)],
        _node,
    ),
    "Deployment": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0),
         ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)],
        _deployment,
    ),
    "ReplicaSet": (
        [("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
         ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)],
        _replica_set,
    ),
    "Service": (
        [("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0),
         ("Port(s)", "string", 0), ("Age", "string", 0), ("Selector", "string", 1)],
        _service,
    ),
    "Ingress": (
        [("Name", "string", 0), ("Class", "string", 0), ("Hosts", "string", 0), ("Address", "string", 0),
         ("Ports", "string", 0), ("Age", "string", 0)],
        _ingress,
    ),
    "Event": (
        [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
         ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0), ("First Seen", "string", 1),
         ("Count", "string", 1), ("Name", "string", 1)],
        _event,
    ),
    "Namespace": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)], _namespace),
}  # fmt: skip
DEFAULT = ([("Name", "string", 0), ("Created At", "date", 0)], _default)


def wants_table(accept: str) -> str | None:
    """The Table version an Accept header asks for (``v1`` or ``v1beta1``), or None for plain objects."""
    for offer in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in offer.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
    return None


def _row_object(obj: dict[str, Any], include: str, table_version: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": metadata}


def table(
    kind: str, objects: list[dict[str, Any]], revision: str, table_version: str = "v1", include: str = "Metadata"
) -> dict[str, Any]:
    """A ``meta.k8s.io`` Table of ``objects`` (full objects, with kind and apiVersion)."""
    columns, cells = PRINTERS.get(kind, DEFAULT)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj)}
        shown = _row_object(obj, include, table_version)
        if shown is not None:
            row["object"] = shown
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": {"resourceVersion": revision},
        "columnDefinitions": [
            {"name": name, "type": kind_, "format": "name" if name == "Name" else "", "description": "", "priority": p}
            for name, kind_, p in columns
        ],
        "rows": rows,
    }
