"""The emulator's etcd: objects by (resource, namespace, name) with the metadata the API server maintains.

uid (a UUID at creation), resourceVersion (one counter for the whole store, bumped on every change, as etcd's
revision), generation (1 at creation, +1 when anything but metadata and status changes), creationTimestamp (RFC 3339,
second precision). Selectors: equality-based label selectors (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``) and field
selectors on dotted paths (``metadata.name=x``, ``involvedObject.kind=Pod``).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kube_emulator.resources import ResourceType, already_exists, bad_request, namespace_not_found, not_found

Key = tuple[str, str, str]  # (plural, namespace or "", name)
# How many changes a watch can resume from: older resourceVersions are answered 410 Gone, as etcd's compaction does.
HISTORY = 10_000


@dataclass(frozen=True)
class Change:
    """One write, as a watch reports it: ADDED, MODIFIED or DELETED, the object after it (before, for DELETED)."""

    revision: int
    type: str
    plural: str
    namespace: str
    obj: dict[str, Any]


def clone(document: Any) -> Any:
    """A deep copy of a JSON document (dicts and lists of immutable values): what every read and write of the store
    pays, about 2.4 times faster than ``copy.deepcopy``, which keeps a memo for shared and cyclic references that
    objects decoded from JSON or YAML never have (the controllers list a Deployment's pods on every reconcile)."""
    if isinstance(document, dict):
        return {key: clone(value) for key, value in document.items()}
    if isinstance(document, list):
        return [clone(value) for value in document]
    return document


def clone_object(obj: dict[str, Any]) -> dict[str, Any]:
    """``clone`` of an object, typed as one."""
    return {key: clone(value) for key, value in obj.items()}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector_terms(selector: str | None) -> list[str]:
    return [term.strip() for term in (selector or "").split(",") if term.strip()]


def matches_labels(labels: dict[str, str], selector: str | None) -> bool:
    for term in _selector_terms(selector):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _dotted(obj: Any, path: str) -> str:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)


def matches_fields(obj: dict[str, Any], selector: str | None) -> bool:
    for term in _selector_terms(selector):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if (_dotted(obj, key.strip()) == value.strip()) == negate:
            return False
    return True


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """Thread-safe; every method returns deep copies, so callers never alias stored state."""

    def __init__(self, history: int = HISTORY) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._revision = 0
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._history: deque[Change] = deque(maxlen=history)

    def _key(self, resource: ResourceType, namespace: str | None, name: str) -> Key:
        return (resource.plural, (namespace or "") if resource.namespaced else "", name)

    def _bump(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _write(self, kind: str, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (ADDED or MODIFIED) under a new resourceVersion, set on ``obj`` too; returns ``obj``."""
        obj["metadata"]["resourceVersion"] = self._bump()
        self._objects[key] = clone(obj)
        self._record(kind, key, self._objects[key])
        return obj

    def _record(self, kind: str, key: Key, stored: dict[str, Any]) -> None:
        """Remember a write; ``stored`` is the store's own copy, never handed out nor changed in place, so the history
        shares it instead of copying every write again."""
        self._history.append(Change(self._revision, kind, key[0], key[1], stored))
        self.changed.notify_all()

    @property
    def revision(self) -> str:
        return str(self._revision)

    def changes_since(self, revision: int) -> list[Change] | None:
        """The writes after ``revision``, oldest first; None when some of them are no longer kept (410 Gone)."""
        with self.lock:
            if revision < self._revision and (not self._history or self._history[0].revision > revision + 1):
                return None
            return [change for change in self._history if change.revision > revision]

    def wait_for_change(self, revision: int, timeout: float) -> None:
        """Block until the store is past ``revision`` or ``timeout`` seconds have passed."""
        with self.changed:
            self.changed.wait_for(lambda: self._revision > revision, timeout)

    def require_namespace(self, namespace: str) -> None:
        if ("namespaces", "", namespace) not in self._objects:
            raise namespace_not_found(namespace)

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self._objects.get(self._key(resource, namespace, name))
            if obj is None:
                raise not_found(resource, name)
            return clone_object(obj)

    def find(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self._objects.get(self._key(resource, namespace, name))
            return clone(obj) if obj is not None else None

    def list(
        self,
        resource: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        with self.lock:
            found = [
                clone(obj)
                for (plural, ns, _), obj in sorted(self._objects.items())
                if plural == resource.plural
                and (namespace is None or ns == namespace)
                and matches_labels(obj["metadata"].get("labels") or {}, label_selector)
                and matches_fields(obj, field_selector)
            ]
            return found

    def create(self, resource: ResourceType, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Store a new object, filling in the server-maintained metadata (``dry_run``: check and fill, store nothing).

        Raises:
            ApiError: 404 when its namespace does not exist, 409 AlreadyExists, 400 without a name.
        """
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            raise bad_request("name or generateName is required")
        with self.lock:
            if resource.namespaced:
                self.require_namespace(metadata.get("namespace", ""))
            key = self._key(resource, metadata.get("namespace"), name)
            if key in self._objects:
                raise already_exists(resource, name)
            obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            if resource.plural not in ("pods", "events", "nodes", "namespaces", "services"):
                metadata["generation"] = 1
            return obj if dry_run else self._write("ADDED", key, obj)

    def update(self, resource: ResourceType, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Replace a stored object; a no-op write keeps its resourceVersion (and generation), as the API server does.

        Raises:
            ApiError: 404 when it no longer exists.
        """
        metadata = obj["metadata"]
        with self.lock:
            key = self._key(resource, metadata.get("namespace"), metadata["name"])
            current = self._objects.get(key)
            if current is None:
                raise not_found(resource, metadata["name"])
            for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                if field in current["metadata"]:
                    metadata[field] = current["metadata"][field]
                else:
                    metadata.pop(field, None)
            if obj == current:
                return clone_object(current)
            if "generation" in metadata and spec_of(obj) != spec_of(current):
                metadata["generation"] = int(metadata["generation"]) + 1
            return obj if dry_run else self._write("MODIFIED", key, obj)

    def delete(self, resource: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """Raises: ApiError 404 when it does not exist."""
        with self.lock:
            key = self._key(resource, namespace, name)
            stored = self._objects.pop(key, None)
            if stored is None:
                raise not_found(resource, name)
            gone = clone(stored)  # the stored copy is in the history already: it stays as it was written
            gone["metadata"]["resourceVersion"] = self._bump()
            self._record("DELETED", key, gone)
            return clone_object(gone)
