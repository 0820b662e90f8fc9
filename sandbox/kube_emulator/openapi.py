"""OpenAPI v3 documents (``/openapi/v3`` and one per group version), built from kubernetes-validate's definitions.

kubectl reads them for two things (``k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go`` and
``kubectl explain``): whether a kind's PATCH accepts the ``fieldValidation`` query parameter (then kubectl leaves
validation to the server, which validates strictly here) and the schemas of the kinds. Only v3 is served: kubectl
fetches v2 as protobuf, and v3 is what it prefers since 1.27.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from kube_emulator.resources import RESOURCES, ResourceType
from kube_emulator.schemas import REF_PREFIX, definition_name, definitions

COMPONENTS = "#/components/schemas/"
DEFINITIONS = "#/definitions/"
QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _openapi_schema(schema: Any, refs: str = COMPONENTS, nullable: str = "nullable") -> Any:
    """JSON Schema → OpenAPI schema: ``$ref``s under ``refs`` (3.0's components, 2.0's definitions), a type list
    such as ``["string", "null"]`` as one type plus ``nullable`` (3.0) or ``x-nullable`` (2.0)."""
    if isinstance(schema, list):
        return [_openapi_schema(item, refs, nullable) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = refs + value.removeprefix(REF_PREFIX)
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if kinds:
                out["type"] = kinds[0]
            if "null" in value:
                out[nullable] = True
        elif key == "enum" and isinstance(value, list):
            out[key] = [v for v in value if v is not None]
        else:
            out[key] = _openapi_schema(value, refs, nullable)
    return out


def _references(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["$ref"].removeprefix(REF_PREFIX)} if isinstance(schema.get("$ref"), str) else set()
        return found.union(*(_references(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_references(v) for v in schema))
    return set()


def _closure(roots: list[str], version: str) -> list[str]:
    defs = definitions(version)
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(ref for ref in _references(defs[name]) if ref in defs and ref not in seen)
    return sorted(seen)


def _gvk(resource: ResourceType) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _paths(resource: ResourceType) -> dict[str, Any]:
    prefix = f"/apis/{resource.api_version}" if resource.group else f"/api/{resource.version}"
    scope = (
        f"{prefix}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{prefix}/{resource.plural}"
    )
    body = {"content": {"application/json": {"schema": {"$ref": COMPONENTS + definition_name(resource)}}}}
    answer = {"200": {"description": "OK", **body}}
    parameters = [
        {"name": p, "in": "query", "schema": {"type": "string"}, "uniqueItems": True} for p in QUERY_PARAMETERS
    ]
    operation = {"x-kubernetes-group-version-kind": _gvk(resource), "parameters": parameters, "responses": answer}
    return {
        scope: {
            "get": {**operation, "x-kubernetes-action": "list"},
            "post": {**operation, "x-kubernetes-action": "post", "requestBody": body},
        },
        f"{scope}/{{name}}": {
            "get": {**operation, "x-kubernetes-action": "get"},
            "put": {**operation, "x-kubernetes-action": "put", "requestBody": body},
            "patch": {**operation, "x-kubernetes-action": "patch"},
            "delete": {**operation, "x-kubernetes-action": "delete"},
        },
    }


def _served() -> dict[str, list[ResourceType]]:
    """``api/v1``, ``apis/apps/v1``… → the resources served there."""
    served: dict[str, list[ResourceType]] = {}
    for resource in RESOURCES:
        key = f"apis/{resource.api_version}" if resource.group else f"api/{resource.version}"
        served.setdefault(key, []).append(resource)
    return served


@functools.cache
def group_version_document(path: str, version: str) -> bytes | None:
    """The OpenAPI v3 document of ``api/v1`` or ``apis/<group>/<version>``, serialized once."""
    resources = _served().get(path)
    if resources is None:
        return None
    defs = definitions(version)
    schemas = {name: _openapi_schema(defs[name]) for name in _closure([definition_name(r) for r in resources], version)}
    for resource in resources:
        if definition_name(resource) in schemas:
            schemas[definition_name(resource)]["x-kubernetes-group-version-kind"] = [_gvk(resource)]
    paths: dict[str, Any] = {}
    for resource in resources:
        paths.update(_paths(resource))
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{version}.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return json.dumps(document).encode()


@functools.cache
def v2_document(version: str) -> bytes:
    """``/openapi/v2`` as JSON (Swagger 2.0): every served kind's paths and definitions. kubectl asks for it as
    protobuf only and is answered 406 (it then uses v3); JSON clients (``kubectl get --raw``, scripts) read it."""
    resources = list(RESOURCES)
    defs = definitions(version)
    names = _closure([definition_name(r) for r in resources], version)
    schemas = {name: _openapi_schema(defs[name], DEFINITIONS, "x-nullable") for name in names}
    paths: dict[str, Any] = {}
    for resource in resources:
        if definition_name(resource) in schemas:
            schemas[definition_name(resource)]["x-kubernetes-group-version-kind"] = [_gvk(resource)]
        for path, operations in _paths(resource).items():
            paths[path] = {
                verb: {
                    **{k: v for k, v in operation.items() if k not in ("requestBody", "responses", "parameters")},
                    "parameters": [
                        {"name": p["name"], "in": "query", "type": "string", "uniqueItems": True}
                        for p in operation["parameters"]
                    ],
                    "responses": {
                        "200": {"description": "OK", "schema": {"$ref": DEFINITIONS + definition_name(resource)}}
                    },
                }
                for verb, operation in operations.items()
            }
    document = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{version}.0"},
        "paths": paths,
        "definitions": schemas,
    }
    return json.dumps(document).encode()


def index(version: str) -> dict[str, Any]:
    """``/openapi/v3``: where each group version's document is, with a hash that changes when it does."""
    paths = {}
    for path in sorted(_served()):
        digest = hashlib.sha512(group_version_document(path, version) or b"").hexdigest()[:64].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
