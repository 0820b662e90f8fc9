"""Deployment manifests for tests that drive the Kubernetes emulator or kubectl directly (not through ApplyApp)."""

from __future__ import annotations

from typing import Any

PINNED_IMAGE = "registry/web@sha256:" + "a" * 64


def deployment(
    name: str,
    image: str = PINNED_IMAGE,
    *,
    replicas: int = 1,
    container: str = "c",
    pod_labels: dict[str, str] | None = None,
    **pod_spec: Any,
) -> dict[str, Any]:
    """An apps/v1 Deployment of one container selecting ``app: <name>``; ``pod_labels`` are added to its pods'."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **(pod_labels or {})}},
                "spec": {"containers": [{"name": container, "image": image}], **pod_spec},
            },
        },
    }
