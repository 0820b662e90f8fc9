"""Watch as the API concepts describe it ("Efficient detection of changes", "Watch bookmarks"): the stream of one
request from the emulator's store, read event by event (idle ticks are None)."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

from kube_emulator import AllowAll, KubeEmulator, watch
from kube_emulator.resources import BY_KIND
from kube_emulator.store import Store

NAMESPACE, POD = BY_KIND["Namespace"], BY_KIND["Pod"]


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team", "labels": labels}, "spec": {}}


def store_with_team(history: int = 100) -> Store:
    store = Store(history=history)
    store.create(NAMESPACE, {"metadata": {"name": "team"}})
    return store


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 5.0  # each look at the clock is 5 s later: bookmarks and timeouts come quickly
        return self.now


def events(stream: Iterator[dict[str, Any] | None], count: int) -> list[dict[str, Any]]:
    seen = []
    for event in stream:
        if event is not None:
            seen.append(event)
        if len(seen) == count:
            break
    return seen


def test_a_watch_without_resource_version_starts_with_what_exists_then_streams_changes() -> None:
    # Given a pod, watched with a label selector from no resourceVersion
    store = store_with_team()
    store.create(POD, pod("a", app="web"))
    stream = watch.events(store, lambda: None, POD, "team", {"labelSelector": "app=web"})
    first = events(stream, 1)
    # When a matching pod is added and another that does not match
    store.create(POD, pod("other", app="db"))
    store.create(POD, pod("b", app="web"))
    # Then the first event is a synthetic ADDED for what existed, then only the matching change
    second = events(stream, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first + second] == [("ADDED", "a"), ("ADDED", "b")]


def test_a_watch_resumes_after_its_resource_version_and_reports_modifications_and_deletions() -> None:
    # Given a resourceVersion taken after the pod was created
    store = store_with_team()
    created = store.create(POD, pod("a"))
    since = created["metadata"]["resourceVersion"]
    # When the pod is modified then deleted
    changed = store.get(POD, "team", "a")
    changed["metadata"]["labels"] = {"tier": "front"}
    store.update(POD, changed)
    store.delete(POD, "team", "a")
    # Then a watch from that version sees exactly those two changes, each with its own resourceVersion
    seen = events(watch.events(store, lambda: None, POD, "team", {"resourceVersion": since}), 2)
    assert [e["type"] for e in seen] == ["MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert int(since) < versions[0] < versions[1]


def test_a_resource_version_older_than_the_history_is_410_expired() -> None:
    # Given a store that keeps only the last two writes, and more writes than that after a version
    store = store_with_team(history=2)
    since = store.create(POD, pod("a"))["metadata"]["resourceVersion"]
    for name in ("b", "c", "d"):
        store.create(POD, pod(name))
    # When a watch resumes from the old version
    seen = events(watch.events(store, lambda: None, POD, "team", {"resourceVersion": since}), 1)
    # Then it gets one ERROR event with the Status of an expired version, so the client lists again
    assert seen[0]["type"] == "ERROR"
    assert (seen[0]["object"]["code"], seen[0]["object"]["reason"]) == (410, "Expired")
    assert seen[0]["object"]["message"].startswith(f"too old resource version: {since} (")


def test_bookmarks_come_only_when_asked_and_the_watch_ends_at_its_timeout() -> None:
    store = store_with_team()
    since = store.revision
    query = {"resourceVersion": since, "allowWatchBookmarks": "true", "timeoutSeconds": "60"}
    # When nothing changes for longer than the bookmark interval
    marked = [e for e in watch.events(store, lambda: None, POD, "team", query, clock=FakeClock()) if e is not None]
    plain = [e for e in watch.events(store, lambda: None, POD, "team", {**query, "allowWatchBookmarks": "false"}, clock=FakeClock()) if e is not None]  # fmt: skip
    # Then bookmarks carry only the kind and the resourceVersion, and the stream ended by itself (timeoutSeconds)
    assert marked and all(e["type"] == "BOOKMARK" for e in marked)
    assert marked[0]["object"] == {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": since}}
    assert plain == []


def test_the_controllers_run_while_a_watch_waits() -> None:
    # Given a watch whose refresh makes a change (as a pod that starts while nobody reads)
    store = store_with_team()
    since = store.revision
    calls = []

    def refresh() -> None:
        calls.append(1)
        if len(calls) == 2:
            store.create(POD, pod("started"))

    # Then the change made by the refresh is streamed without any other request
    seen = events(watch.events(store, refresh, POD, "team", {"resourceVersion": since}), 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [("ADDED", "started")]


def test_a_watch_whose_client_went_away_stops_within_a_tick() -> None:
    # Given a watch over HTTP (TLS, as kubectl uses it), with its first event read
    with KubeEmulator(authenticator=AllowAll()) as emulator:
        emulator.api.handle("POST", "/api/v1/namespaces", {}, "application/json", b'{"metadata": {"name": "team"}}')
        refreshes = []
        refresh = emulator.controllers.refresh
        emulator.controllers.refresh = lambda *args: (refreshes.append(1), refresh(*args))[1]  # type: ignore[method-assign]
        connection = http.client.HTTPSConnection("127.0.0.1", emulator.port, context=ssl._create_unverified_context())
        connection.request("GET", "/api/v1/namespaces?watch=1", headers={"Authorization": "Bearer t"})
        answer = connection.getresponse()
        assert answer.status == 200 and answer.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(answer.readline())["type"] == "ADDED"
        # When the client closes its connection
        answer.close()
        connection.close()
        time.sleep(1.0)
        settled = len(refreshes)
        time.sleep(1.0)
        # Then the server noticed and stopped ticking for it
        assert len(refreshes) == settled
