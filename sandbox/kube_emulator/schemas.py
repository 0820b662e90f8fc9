"""The Kubernetes OpenAPI definitions kubernetes-validate ships, for the emulated version: one source for the
strategic-merge keys (``x-kubernetes-patch-merge-key``/``-strategy``) and the OpenAPI documents the server serves."""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

from kube_emulator.resources import ResourceType

REF_PREFIX = "#/$defs/"


@functools.cache
def definitions(version: str) -> dict[str, Any]:
    """Definition name (``io.k8s.api.apps.v1.Deployment``) → JSON schema, for Kubernetes ``version`` (``1.31``)."""
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local"
    return dict(json.loads((folder / "_definitions.json").read_text())["$defs"])


def definition_name(resource: ResourceType) -> str:
    """``io.k8s.api.<group's first label or core>.<version>.<Kind>``, how the OpenAPI definitions are named."""
    group = resource.group.split(".")[0] if resource.group else "core"
    return f"io.k8s.api.{group}.{resource.version}.{resource.kind}"


def resolve(schema: dict[str, Any] | None, version: str) -> dict[str, Any]:
    """The schema itself when it is a ``$ref`` (one level; the definitions do not chain references)."""
    if not schema:
        return {}
    ref = schema.get("$ref") or (schema.get("allOf") or [{}])[0].get("$ref")
    if ref and ref.startswith(REF_PREFIX):
        return definitions(version).get(ref[len(REF_PREFIX) :], {})
    return schema
