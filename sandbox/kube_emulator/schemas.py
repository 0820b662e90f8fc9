"""The Kubernetes OpenAPI definitions kubernetes-validate ships, for the emulated version: one source for the
strategic-merge keys (``x-kubernetes-patch-merge-key``/``-strategy``) and the OpenAPI documents the server serves."""

from __future__ import annotations

import functools
import json
import re
from importlib.resources import files
from typing import Any

import jsonschema
from referencing import Registry, Resource

from kube_emulator.resources import ResourceType

REF_PREFIX = "#/$defs/"


@functools.cache
def definitions(version: str) -> dict[str, Any]:
    """Definition name (``io.k8s.api.apps.v1.Deployment``) → JSON schema, for Kubernetes ``version`` (``1.31``)."""
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local"
    return dict(json.loads((folder / "_definitions.json").read_text())["$defs"])


@functools.cache
def strict_validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """kubernetes-validate's strict schema of ``kind`` (unknown fields are errors) for Kubernetes ``version``, read
    and compiled once. ``kubernetes_validate.validate`` reads both JSON files again at every call (17 ms for a
    Deployment), and the server validates every write; the files, the registry and the validator class are the ones
    that function uses (kubernetes-validate 1.x, utils.validate), so the first error found is the same.

    Raises: FileNotFoundError when kubernetes-validate has no schema of the kind for that version."""
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # rbac.authorization.k8s.io/v1 → rbac-v1
    schema = json.loads((folder / f"{kind.lower()}-{group_version}.json").read_text())
    registry = Resource.from_contents(json.loads((folder / "_definitions.json").read_text())) @ (
        Resource.from_contents(schema) @ Registry()
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


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
        referenced: dict[str, Any] = definitions(version).get(ref[len(REF_PREFIX) :], {})
        return referenced
    return schema
