"""Server-side apply: field sets, ownership, conflicts and the merge (a faithful subset of structured-merge-diff).

A field set is a set of paths; a path is a tuple of ``f:<field>`` and ``k:<json key>`` elements, exactly the keys
of ``managedFields[].fieldsV1``. Associative lists (containers by name, ports by port…) are merged item by item using
the keys their OpenAPI ``x-kubernetes-list-map-keys`` declare; every other list is atomic (replaced whole, owned as
one leaf). What is implemented, following https://kubernetes.io/docs/reference/using-api/server-side-apply/:
- an applier owns exactly the fields of its configuration;
- a field set to a different value than another manager's is a conflict (409) unless ``force=true``, which takes
  ownership; the same value is shared ownership, never a conflict;
- a field the applier owned before and leaves out of its new configuration is removed, unless another manager owns it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

Path = tuple[str, ...]
MISSING: Any = object()
# list field name -> its map keys (core/v1 and apps/v1 OpenAPI x-kubernetes-list-map-keys for what we serve).
LIST_MAP_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
}
# ``ports`` is keyed by containerPort in a container and by port in a Service (both with protocol).
PORT_KEYS = {"containerPort": ("containerPort", "protocol"), "port": ("port", "protocol")}
UNMANAGED_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"}


def _list_keys(field: str, items: list[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return LIST_MAP_KEYS.get(field)
    if field == "ports":
        for marker, keys in PORT_KEYS.items():
            if all(marker in item for item in items):
                return keys
        return None
    return LIST_MAP_KEYS.get(field)


def _item_key(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    # Protocol defaults to TCP: apply configs usually omit it, the stored object has it.
    values = {key: item.get(key, "TCP" if key == "protocol" else None) for key in keys}
    return "k:" + json.dumps(values, separators=(",", ":"), sort_keys=True)


def field_set(config: dict[str, Any]) -> set[Path]:
    """The fields an apply configuration sets (apiVersion, kind, identity and status are not managed)."""
    paths: set[Path] = set()
    for key, value in config.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        if key == "metadata":
            value = {k: v for k, v in value.items() if k not in UNMANAGED_METADATA}
        paths.update(_walk(value, (f"f:{key}",)))
    return paths


def _walk(value: Any, path: Path) -> Iterator[Path]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _walk(child, (*path, f"f:{key}"))
    elif isinstance(value, list) and (keys := _list_keys(path[-1][2:], value)) is not None:
        for item in value:
            item_path = (*path, _item_key(item, keys))
            yield item_path
            yield from _walk(item, item_path)
    else:
        yield path


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        if path[-1].startswith("k:"):
            node.setdefault(".", {})
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for element, child in tree.items():
        if element == ".":
            continue
        path = (*prefix, element)
        if not child or "." in child:
            paths.add(path)
        paths.update(from_fields_v1(child, path))
    return paths


def _child(node: Any, element: str) -> Any:
    if element.startswith("f:") and isinstance(node, dict):
        return node.get(element[2:], MISSING)
    if element.startswith("k:") and isinstance(node, list):
        wanted = json.loads(element[2:])
        for item in node:
            if isinstance(item, dict) and _item_key(item, tuple(wanted)) == element:
                return item
    return MISSING


def value_at(obj: Any, path: Path) -> Any:
    for element in path:
        obj = _child(obj, element)
        if obj is MISSING:
            break
    return obj


def remove_at(obj: dict[str, Any], path: Path) -> None:
    parent = value_at(obj, path[:-1])
    element = path[-1]
    if element.startswith("f:") and isinstance(parent, dict):
        parent.pop(element[2:], None)
    elif element.startswith("k:") and isinstance(parent, list):
        item = _child(parent, element)
        if item is not MISSING:
            parent.remove(item)


def describe_path(path: Path) -> str:
    """``.spec.template.spec.containers[name="app"].image``, as the API server prints conflicting fields."""
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        else:
            pairs = ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(element[2:]).items())
            out += f"[{pairs}]"
    return out


def merge(live: Any, config: Any, field: str = "") -> Any:
    """Merge an apply configuration into a live value: maps by key, associative lists by item key, the rest replaced."""
    if isinstance(live, dict) and isinstance(config, dict):
        merged = dict(live)
        for key, value in config.items():
            merged[key] = merge(live.get(key, MISSING), value, key)
        return merged
    if isinstance(live, list) and isinstance(config, list):
        keys = _list_keys(field, config) or _list_keys(field, live)
        if keys is not None and all(isinstance(i, dict) for i in live + config):
            by_key = {_item_key(item, keys): item for item in config}
            result = [
                merge(item, by_key.pop(_item_key(item, keys)), "") if _item_key(item, keys) in by_key else item
                for item in live
            ]
            return result + list(by_key.values())
    return copy.deepcopy(config)


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, Path]], api_version: str) -> None:
        super().__init__("apply conflict")
        self.conflicts = conflicts
        self.api_version = api_version


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], set[Path]]:
    """(manager, operation) -> owned paths, from ``metadata.managedFields``."""
    owned: dict[tuple[str, str], set[Path]] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("subresource"):
            continue
        owned[(entry["manager"], entry["operation"])] = from_fields_v1(entry.get("fieldsV1") or {})
    return owned


def _entries(owned: dict[tuple[str, str], set[Path]], api_version: str, previous: list[dict[str, Any]]) -> list[Any]:
    times = {(e["manager"], e["operation"]): e.get("time") for e in previous}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = []
    for (manager, operation), paths in owned.items():
        if not paths:
            continue
        fields = to_fields_v1(paths)
        same = next((e for e in previous if e["manager"] == manager and e["operation"] == operation), None)
        unchanged = same is not None and same.get("fieldsV1") == fields
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": times.get((manager, operation)) if unchanged else now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        )
    return entries


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (None: create).

    Raises:
        ApplyConflict: fields set to other values than their current owners', without ``force``.
    """
    api_version = config.get("apiVersion", "")
    base = copy.deepcopy(live) if live is not None else {"apiVersion": api_version, "kind": config.get("kind")}
    owned = managers(base)
    previous = list(base.get("metadata", {}).get("managedFields") or [])
    mine = (manager, "Apply")
    new_fields = field_set(config)
    conflicts: list[tuple[str, Path]] = []
    for other, paths in owned.items():
        if other == mine:
            continue
        for path in sorted(new_fields & paths):
            if value_at(base, path) != value_at(config, path) and not path[-1].startswith("k:"):
                conflicts.append((other[0], path))
    if conflicts and not force:
        raise ApplyConflict(conflicts, api_version)
    for other in owned:
        if other != mine and force:
            owned[other] = owned[other] - {path for _, path in conflicts}
    others = set().union(*(paths for key, paths in owned.items() if key != mine)) if owned else set()
    # Shortest first: a list item dropped from the configuration goes whole (its key fields with it). Removing its
    # fields first would leave a keyless item that no longer matches its own ``k:`` path, e.g. ``ports: [{}]``.
    for path in sorted(owned.get(mine, set()) - new_fields - others, key=len):
        remove_at(base, path)
    merged = merge(base, {k: v for k, v in config.items() if k != "status"})
    owned[mine] = new_fields
    merged.setdefault("metadata", {})["managedFields"] = _entries(owned, api_version, previous)
    return dict(merged)


def record_update(obj: dict[str, Any], manager: str) -> None:
    """Ownership of every field of an object written by create/update (operation ``Update``)."""
    owned = managers(obj)
    owned[(manager, "Update")] = field_set(obj)
    previous = list(obj.get("metadata", {}).get("managedFields") or [])
    obj.setdefault("metadata", {})["managedFields"] = _entries(owned, obj.get("apiVersion", ""), previous)


def record_change(live: dict[str, Any], new: dict[str, Any], manager: str) -> None:
    """Ownership after an update or a non-apply patch (operation ``Update``), as structured-merge-diff records it:
    ``manager`` takes the fields whose value it set or changed, and every other manager loses them; fields the write
    removed are owned by nobody."""
    before = field_set(live)
    after = field_set(new)
    # a list item's own path (``k:{...}``) is taken only by the writer that adds the item, like its key fields
    changed = {
        path
        for path in after
        if path not in before or (not path[-1].startswith("k:") and value_at(live, path) != value_at(new, path))
    }
    gone = before - after
    owned = managers(live)
    mine = (manager, "Update")
    for key in owned:
        owned[key] = owned[key] - gone - (changed if key != mine else set())
    owned[mine] = owned.get(mine, set()) | changed
    previous = list(live.get("metadata", {}).get("managedFields") or [])
    new.setdefault("metadata", {})["managedFields"] = _entries(owned, new.get("apiVersion", ""), previous)
