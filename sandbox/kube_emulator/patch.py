"""The three non-apply PATCH types of the API server (Kubernetes API concepts, "Patch operations"):

- JSON merge patch (RFC 7386): maps merge, ``null`` deletes, lists are replaced;
- JSON patch (RFC 6902), applied by the ``jsonpatch`` library;
- strategic merge patch (``application/strategic-merge-patch+json``, built-in kinds only): like a merge patch, but a
  list whose OpenAPI schema has ``x-kubernetes-patch-strategy: merge`` merges by its
  ``x-kubernetes-patch-merge-key`` (containers by name, ports by containerPort…), and the directives ``$patch``
  (replace/delete/merge), ``$retainKeys``, ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``
  work as ``k8s.io/apimachinery/pkg/util/strategicpatch`` applies them (the form kubectl sends for client-side
  ``apply``, ``set image``, ``rollout restart``, ``edit`` and ``patch``).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from kube_emulator.resources import ApiError, ResourceType, bad_request, unsupported_media_type
from kube_emulator.schemas import definition_name, definitions, resolve

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
ORDER, DELETE_FROM, RETAIN, DIRECTIVE = "$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys", "$patch"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Raises: ApiError 422 when an operation cannot apply (a failed ``test``, a missing path)."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    try:
        return dict(jsonpatch.apply_patch(target, operations))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc


def _properties(schema: dict[str, Any], version: str) -> dict[str, Any]:
    return resolve(schema, version).get("properties") or {}


def _strategy(field_schema: dict[str, Any]) -> tuple[str, str | None]:
    return field_schema.get("x-kubernetes-patch-strategy", ""), field_schema.get("x-kubernetes-patch-merge-key")


def _merge_list(
    live: list[Any], patch: list[Any], key: str | None, item_schema: dict[str, Any], version: str
) -> list[Any]:
    if key is None:  # a list of primitives with the merge strategy: a union, in order
        return list(live) + [item for item in patch if item not in live]
    result = [copy.deepcopy(item) for item in live]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"a strategic merge patch list item must be an object with {key!r}")
        directive = item.get(DIRECTIVE)
        position = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if directive == "replace":
            return [copy.deepcopy(i) for i in patch if i.get(DIRECTIVE) != "replace"]
        if directive == "delete":
            result = [old for old in result if old.get(key) != item.get(key)]
        elif position is None:
            result.append(_strategic(None, item, item_schema, version))
        else:
            result[position] = _strategic(result[position], item, item_schema, version)
    return result


def _order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """``$setElementOrder``: the listed items first, in that order; the others keep their place after them."""

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) if isinstance(o, dict) else o for o in order]
    listed = sorted((i for i in items if ident(i) in wanted), key=lambda i: wanted.index(ident(i)))
    return listed + [i for i in items if ident(i) not in wanted]


def _strategic(live: Any, patch: Any, schema: dict[str, Any], version: str) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return None
    content = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace" or not isinstance(live, dict):
        live = {}
    result = dict(live)
    fields = _properties(schema, version)
    for name, value in content.items():
        field_schema = fields.get(name) or {}
        if value is None:
            result.pop(name, None)
            continue
        strategy, key = _strategy(field_schema)
        items_schema = resolve(field_schema.get("items") or {}, version)
        if isinstance(value, list) and "merge" in strategy and isinstance(result.get(name), list):
            result[name] = _merge_list(result[name], value, key, items_schema, version)
        elif isinstance(value, list):
            result[name] = [_strategic(None, item, items_schema, version) for item in value]
        elif isinstance(value, dict) and not field_schema.get("additionalProperties"):
            merged = _strategic(result.get(name), value, field_schema, version)
            if merged is None:
                result.pop(name, None)
            else:
                result[name] = merged
        else:
            result[name] = merge_patch(result.get(name), value)
    for name, values in patch.items():
        if name.startswith(DELETE_FROM) and isinstance(result.get(name[len(DELETE_FROM) :]), list):
            target = name[len(DELETE_FROM) :]
            result[target] = [v for v in result[target] if v not in values]
        elif name.startswith(ORDER) and isinstance(result.get(name[len(ORDER) :]), list):
            target = name[len(ORDER) :]
            result[target] = _order(result[target], values, _strategy(fields.get(target) or {})[1])
    if RETAIN in patch:
        result = {k: v for k, v in result.items() if k in patch[RETAIN]}
    return result


def strategic_merge_patch(resource: ResourceType, live: dict[str, Any], patch: Any, version: str) -> dict[str, Any]:
    """Raises: ApiError 415 for a kind without built-in schema (custom resources take merge patches only)."""
    schema = definitions(version).get(definition_name(resource))
    if schema is None:
        raise unsupported_media_type(f"{STRATEGIC} is not supported by {resource.qualified}")
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be an object")
    return dict(_strategic(live, patch, schema, version))


def patched(resource: ResourceType, live: dict[str, Any], media: str, patch: Any, version: str) -> dict[str, Any]:
    """``live`` after a PATCH of type ``media``. Raises: ApiError 400/415/422."""
    if media == MERGE:
        if not isinstance(patch, dict):
            raise bad_request("a merge patch must be an object")
        return dict(merge_patch(live, patch))
    if media == JSON_PATCH:
        return json_patch(live, patch)
    if media == STRATEGIC:
        return strategic_merge_patch(resource, live, patch, version)
    raise unsupported_media_type(media)
