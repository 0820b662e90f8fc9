"""Watch: ``GET …?watch=1`` streams ``WatchEvent``s (``{"type", "object"}``, one JSON document per chunk) from a
resourceVersion on (Kubernetes API concepts, "Efficient detection of changes", "Watch bookmarks").

- no resourceVersion, or "0": synthetic ADDED events for what exists now, then the changes;
- a resourceVersion the store still remembers: the changes after it; an older one: one ERROR event, 410 Expired
  ("too old resource version"), as after etcd's compaction, so a client lists again;
- ``allowWatchBookmarks=true``: a BOOKMARK (kind, apiVersion, resourceVersion only) when nothing else was sent for
  a while; ``timeoutSeconds`` ends the stream (the server's default is between 30 and 60 minutes).

The controllers run while a watch waits, so what only time changes (a pod that has started) is seen as an event
within ``TICK`` seconds of becoming true: ``kubectl rollout status`` returns on that event, not on a poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kube_emulator.resources import ApiError, ResourceType, bad_request
from kube_emulator.store import Store, matches_fields, matches_labels

TICK = 0.2
BOOKMARK_AFTER = 10.0
DEFAULT_TIMEOUT = 1800.0


def expired(revision: int, oldest: str) -> dict[str, Any]:
    return ApiError(410, "Expired", f"too old resource version: {revision} ({oldest})").body


def events(
    store: Store,
    refresh: Callable[[], None],
    resource: ResourceType,
    namespace: str | None,
    query: dict[str, str],
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any] | None]:
    """The stream of one watch request: events, and None at each idle tick. Raises (before the first event):
    ApiError 400 for a bad parameter."""
    labels, fields = query.get("labelSelector"), query.get("fieldSelector")
    start = query.get("resourceVersion") or ""
    try:
        since = int(start) if start not in ("", "0") else None
        timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    except ValueError as exc:
        raise bad_request(f"invalid watch parameter: {exc}") from exc
    bookmarks = query.get("allowWatchBookmarks") == "true"

    def wanted(plural: str, in_namespace: str, obj: dict[str, Any]) -> bool:
        return (
            plural == resource.plural
            and (namespace is None or in_namespace == namespace)
            and matches_labels(obj["metadata"].get("labels") or {}, labels)
            and matches_fields(obj, fields)
        )

    def stream() -> Iterator[dict[str, Any] | None]:
        position = since
        if position is None:
            with store.lock:
                refresh()
                current = store.list(resource, namespace, labels, fields)
                position = int(store.revision)
            for obj in current:
                yield {"type": "ADDED", "object": obj}
        deadline = clock() + timeout
        quiet_since = clock()
        while clock() < deadline:
            refresh()
            changes = store.changes_since(position)
            if changes is None:
                yield {"type": "ERROR", "object": expired(position, store.revision)}
                return
            for change in changes:
                position = change.revision
                if wanted(change.plural, change.namespace, change.obj):
                    yield {"type": change.type, "object": change.obj}
                    quiet_since = clock()
            if bookmarks and clock() - quiet_since >= BOOKMARK_AFTER:
                mark = {"resourceVersion": str(position)}
                yield {
                    "type": "BOOKMARK",
                    "object": {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": mark},
                }
                quiet_since = clock()
            store.wait_for_change(position, max(0.0, min(TICK, deadline - clock())))
            yield None  # a tick with nothing to send: the server checks that its client is still there

    return stream()
