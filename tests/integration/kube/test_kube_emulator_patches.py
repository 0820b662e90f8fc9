"""The emulator's PATCH types against their specifications: RFC 7386's own examples for JSON merge patch, and the
strategic-merge-patch rules of ``k8s.io/apimachinery/pkg/util/strategicpatch`` (merge keys and directives) with the
merge keys read from the Kubernetes OpenAPI definitions, not from a table of our own."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kube_emulator.patch import JSON_PATCH, MERGE, STRATEGIC, merge_patch, patched
from kube_emulator.resources import BY_KIND, ApiError, ResourceType

VERSION = "1.31"
DEPLOYMENT = BY_KIND["Deployment"]

# RFC 7386, Appendix A "Example Test Cases": (original, patch, result)
RFC_7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7386)
def test_merge_patch_gives_rfc_7386s_results(original: Any, patch: Any, result: Any) -> None:
    assert merge_patch(copy.deepcopy(original), patch) == result


def deployment(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {"template": {"spec": {"containers": containers}}, **spec},
    }


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


TWO = [{"name": "a", "image": "a:1", "args": ["x", "y"]}, {"name": "b", "image": "b:1"}]


def strategic(live: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return patched(DEPLOYMENT, copy.deepcopy(live), STRATEGIC, patch, VERSION)


def template(containers: list[Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def test_strategic_merge_merges_containers_by_name_and_replaces_plain_lists() -> None:
    # When a patch names container b and gives container a new args
    result = strategic(deployment(TWO), template([{"name": "b", "image": "b:2"}, {"name": "a", "args": ["z"]}]))
    # Then b's image changes, a keeps its image, and args (no merge strategy) is replaced, not merged
    assert containers_of(result) == [{"name": "a", "image": "a:1", "args": ["z"]}, {"name": "b", "image": "b:2"}]


def test_strategic_merge_directives() -> None:
    live = deployment(TWO, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    # $patch: delete removes one item of a merged list; $patch: replace replaces the list
    assert [c["name"] for c in containers_of(strategic(live, template([{"name": "a", "$patch": "delete"}])))] == ["b"]
    replaced = strategic(live, template([{"name": "c", "image": "c:1"}, {"$patch": "replace"}]))
    assert containers_of(replaced) == [{"name": "c", "image": "c:1"}]
    # $retainKeys drops the keys a strategy no longer has (kubectl apply switching RollingUpdate → Recreate)
    retained = strategic(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert retained["spec"]["strategy"] == {"type": "Recreate"}
    # $setElementOrder orders a merged list; $deleteFromPrimitiveList removes values from a merged primitive list
    ordered = strategic(
        live, {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}
    )
    assert [c["name"] for c in containers_of(ordered)] == ["b", "a"]
    trimmed = strategic(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert trimmed["metadata"]["finalizers"] == ["b"]
    # and a merged primitive list (finalizers) is a union, a map (labels) merges with null deleting
    merged = strategic(live, {"metadata": {"finalizers": ["c", "a"], "labels": {"app": None, "tier": "front"}}})
    assert (merged["metadata"]["finalizers"], merged["metadata"]["labels"]) == (["a", "b", "c"], {"tier": "front"})


def test_patch_types_refuse_what_their_specification_refuses() -> None:
    live = deployment(TWO)
    # A JSON patch whose test fails is refused whole
    with pytest.raises(ApiError) as failed:
        patched(DEPLOYMENT, live, JSON_PATCH, [{"op": "test", "path": "/metadata/name", "value": "other"}], VERSION)
    assert failed.value.code == 422
    # A merge patch must be an object at the top, and a kind without OpenAPI definitions takes no strategic patch
    with pytest.raises(ApiError) as not_object:
        patched(DEPLOYMENT, live, MERGE, ["x"], VERSION)
    assert not_object.value.code == 400
    custom = ResourceType("example.com", "v1", "widgets", "Widget", namespaced=True)
    with pytest.raises(ApiError) as unsupported:
        patched(custom, {"metadata": {}}, STRATEGIC, {}, VERSION)
    assert unsupported.value.code == 415
