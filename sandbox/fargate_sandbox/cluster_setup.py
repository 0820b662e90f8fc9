"""What an operator applies to a cluster once, before the stack's Kubernetes steps can work: the RBAC manifests of
docs/eks-access.md, taken from the document exactly as an operator copies them, applied as the cluster's creator."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kube_emulator import KubeEmulator
from kube_emulator.resources import BY_KIND, ApiError

_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FIELD_MANAGER = "kubectl"


def documented_manifests(markdown: Path) -> list[dict[str, Any]]:
    """Every object of the document's ``yaml`` code blocks, in order."""
    objects: list[dict[str, Any]] = []
    for block in _YAML_BLOCK.findall(markdown.read_text(encoding="utf-8")):
        objects.extend(document for document in yaml.safe_load_all(block) if document)
    return objects


def apply_as_creator(emulator: KubeEmulator, manifests: Iterable[dict[str, Any]]) -> list[str]:
    """Server-side apply each object (``kubectl apply --server-side``) through the emulator's API handler as the
    cluster's creator; applying again changes nothing. Returns ``Kind/name`` of each object.

    Raises:
        ValueError: an object of a kind the emulator does not serve, or one it rejects (the API server's message).
    """
    applied = []
    for manifest in manifests:
        kind, name = manifest.get("kind", ""), (manifest.get("metadata") or {}).get("name", "")
        resource = BY_KIND.get(kind)
        if resource is None:
            raise ValueError(f"{kind}/{name}: the Kubernetes emulator does not serve this kind")
        prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
        namespace = (manifest.get("metadata") or {}).get("namespace") or "default"
        scope = f"/namespaces/{namespace}" if resource.namespaced else ""
        try:
            emulator.api.handle(
                "PATCH",
                f"{prefix}{scope}/{resource.plural}/{name}",
                {"fieldManager": FIELD_MANAGER, "force": "true"},
                "application/apply-patch+yaml",
                json.dumps(manifest).encode(),
            )
        except ApiError as exc:
            raise ValueError(f"{kind}/{name}: {exc}") from exc
        applied.append(f"{kind}/{name}")
    return applied
