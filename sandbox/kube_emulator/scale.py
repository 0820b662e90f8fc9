"""The ``scale`` subresource of Deployments and ReplicaSets: an ``autoscaling/v1`` Scale view of ``spec.replicas``
(``kubectl scale``, HorizontalPodAutoscalers). The selector is the label-selector string of the object's selector."""

from __future__ import annotations

from typing import Any

from kube_emulator.resources import bad_request


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: metadata[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in metadata
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def replicas_of(scale: dict[str, Any]) -> int:
    """Raises: ApiError 400 when the Scale has no whole, non-negative ``spec.replicas``."""
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise bad_request(
            f"Scale.autoscaling spec.replicas: Invalid value: {replicas!r}: must be a non-negative integer"
        )
    return replicas
