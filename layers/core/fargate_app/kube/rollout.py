"""Reading a rollout from plain API objects (dicts as the API server returns them): pure, so tests need no server.

Ready means what the walkthrough checks with ``kubectl get pods -o wide``: the Deployment reports every replica ready
and up to date, and every pod is Running on a Fargate node (EKS names them ``fargate-ip-….compute.internal``) — a pod
Running anywhere else means the Fargate profile did not select it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fargate_app.kube.models import DeploymentProgress, PodSummary

FARGATE_NODE_PREFIX = "fargate-"
# Waiting reasons of a container whose image cannot be pulled (kubelet images/types.go).
IMAGE_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
FAILED_SCHEDULING = "FailedScheduling"


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def deployment_progress(deployment: dict[str, Any]) -> DeploymentProgress:
    metadata, spec, status = deployment["metadata"], deployment.get("spec") or {}, deployment.get("status") or {}
    return DeploymentProgress(
        namespace=metadata["namespace"],
        name=metadata["name"],
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
    )


def deployment_settled(deployment: dict[str, Any]) -> bool:
    """The controller has seen the latest spec and every replica is updated and ready."""
    progress = deployment_progress(deployment)
    observed = int((deployment.get("status") or {}).get("observedGeneration") or 0)
    generation = int(deployment["metadata"].get("generation") or 0)
    return (
        observed >= generation
        and progress.ready_replicas == progress.replicas
        and progress.updated_replicas == progress.replicas
    )


def _waiting(pod: dict[str, Any]) -> dict[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return dict(waiting)
    return None


def summarize_pod(pod: dict[str, Any]) -> PodSummary:
    """The columns of ``kubectl get pods -o wide`` (STATUS follows kubectl's printer: reason over phase)."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or []) or len(containers)
    phase = status.get("phase") or "Unknown"
    shown = status.get("reason") or phase
    waiting = _waiting(pod)
    if waiting:
        shown = waiting["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        shown = "Terminating"
    return PodSummary(
        name=pod["metadata"]["name"],
        ready=f"{sum(1 for c in containers if c.get('ready'))}/{total}",
        status=shown,
        phase=phase,
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        ip=status.get("podIP"),
        node=(pod.get("spec") or {}).get("nodeName"),
        message=(waiting or {}).get("message") or status.get("message"),
    )


def on_fargate(pod: dict[str, Any]) -> bool:
    node = (pod.get("spec") or {}).get("nodeName") or ""
    return (pod.get("status") or {}).get("phase") == "Running" and node.startswith(FARGATE_NODE_PREFIX)


def _latest_event(events: list[dict[str, Any]], pod_name: str, reason: str) -> dict[str, Any] | None:
    matching = [
        event
        for event in events
        if (event.get("involvedObject") or {}).get("name") == pod_name and event.get("reason") == reason
    ]
    moments = {id(e): parse_time(e.get("lastTimestamp") or e.get("eventTime")) for e in matching}
    oldest = datetime.min.replace(tzinfo=UTC)
    return max(matching, key=lambda e: moments[id(e)] or oldest, default=None)


def pod_problem(pod: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """Why a pod cannot run, in the cluster's own words; None when nothing is known to be wrong (yet)."""
    waiting = _waiting(pod)
    if waiting and waiting["reason"] in IMAGE_PULL_FAILURES:
        return f"{waiting['reason']}: {waiting.get('message') or 'the image cannot be pulled'}"
    status = pod.get("status") or {}
    if status.get("phase") == "Pending" and not (pod.get("spec") or {}).get("nodeName"):
        event = _latest_event(events, pod["metadata"]["name"], FAILED_SCHEDULING)
        if event is not None:
            return f"{FAILED_SCHEDULING}: {event.get('message')}"
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return f"{FAILED_SCHEDULING}: {condition.get('message')}"
    return None


def pending_since(pod: dict[str, Any], started_at: datetime | None) -> datetime | None:
    """From when a pod's grace period counts: its creation, never before the rollout began."""
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    candidates = [moment for moment in (created, started_at) if moment is not None]
    return max(candidates) if candidates else None
