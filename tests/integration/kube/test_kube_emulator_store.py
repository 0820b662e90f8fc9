"""The emulator's store hands out and keeps copies: no caller's change reaches a stored object but a write."""

from __future__ import annotations

from kube_emulator.resources import BY_KIND
from kube_emulator.store import Store


def _pod() -> dict:
    return {
        "metadata": {"name": "web-1", "namespace": "team-a", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }


def test_nothing_a_caller_changes_reaches_the_stored_object() -> None:
    # Given a pod written to the store (its namespace first)
    store, pods = Store(), BY_KIND["Pod"]
    store.create(BY_KIND["Namespace"], {"metadata": {"name": "team-a"}})
    written = _pod()
    created = store.create(pods, written)

    # When the writer, and every reader, change nested parts of what they hold
    written["spec"]["containers"][0]["ports"][0]["containerPort"] = 1
    created["metadata"]["labels"]["app"] = "changed"
    store.get(pods, "team-a", "web-1")["spec"]["containers"].append({"name": "sidecar"})
    (listed,) = store.list(pods, "team-a")
    listed["spec"]["containers"][0]["image"] = "changed"

    # Then the stored pod is still the one written
    stored = store.get(pods, "team-a", "web-1")
    assert stored["spec"] == _pod()["spec"]
    assert stored["metadata"]["labels"] == {"app": "web"}
