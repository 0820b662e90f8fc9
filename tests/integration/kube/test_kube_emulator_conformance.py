"""The emulator answers like a real API server: status codes and body shapes for the calls the steps make.

References: Kubernetes API conventions (sig-architecture/api-conventions.md), "Response Status Kind" for the Status
body of every failure, "HTTP Status codes" for 200/201/400/401/404/409/415/422; API concepts
(reference/using-api/api-concepts) for list bodies; server-side apply (reference/using-api/server-side-apply) for
201-on-create/200-on-update, fieldManager being required, and conflicts.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import urllib3

from kube_emulator import AllowAll

NS = "/api/v1/namespaces"
DEPLOYMENTS = "/apis/apps/v1/namespaces/team/deployments"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
JSON = {"Content-Type": "application/json"}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}


def deployment(replicas: Any = 1, **extra: Any) -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
            **extra,
        },
    }


def failure(code: int, reason: str) -> dict[str, Any]:
    """The fixed part of every error body (api-conventions "Response Status Kind")."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code}


# (title, method, path, headers, body, expected code, expected subset of the answer)
CALLS: list[tuple[str, str, str, dict[str, str], Any, int, dict[str, Any]]] = [
    ("object in a missing namespace", "POST", DEPLOYMENTS, JSON, deployment(), 404,
     {**failure(404, "NotFound"), "message": 'namespaces "team" not found', "details": {"name": "team", "kind": "namespaces"}}),
    ("create a namespace", "POST", NS, JSON, NAMESPACE, 201,
     {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}}, "status": {"phase": "Active"}}),
    ("create it again", "POST", NS, JSON, NAMESPACE, 409,
     {**failure(409, "AlreadyExists"), "message": 'namespaces "team" already exists', "details": {"name": "team", "kind": "namespaces"}}),
    ("get a missing deployment", "GET", f"{DEPLOYMENTS}/web", {}, None, 404,
     {**failure(404, "NotFound"), "message": 'deployments.apps "web" not found', "details": {"name": "web", "group": "apps", "kind": "deployments"}}),
    ("apply without fieldManager", "PATCH", f"{DEPLOYMENTS}/web", APPLY, deployment(), 422,
     {**failure(422, "Invalid")}),
    ("apply an unknown field", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ci", APPLY, deployment(bogus=1), 422,
     {**failure(422, "Invalid"), "details": {"name": "web", "group": "apps", "kind": "Deployment"}}),
    ("apply creates", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ci", APPLY, deployment(), 201,
     {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": "team", "generation": 1}, "spec": {"replicas": 1}}),
    ("apply again updates in place", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ci", APPLY, deployment(), 200,
     {"metadata": {"generation": 1}}),
    ("another manager, another value", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ops", APPLY, deployment(2), 409,
     {**failure(409, "Conflict"), "message": 'Apply failed with 1 conflict: conflict with "ci" using apps/v1: .spec.replicas',
      "details": {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "ci" using apps/v1', "field": ".spec.replicas"}]}}),
    ("the same value is shared, not a conflict", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ops", APPLY, deployment(1), 200,
     {"spec": {"replicas": 1}}),
    ("force takes ownership", "PATCH", f"{DEPLOYMENTS}/web?fieldManager=ops&force=true", APPLY, deployment(3), 200,
     {"metadata": {"generation": 2}, "spec": {"replicas": 3}}),
    ("an unknown patch type", "PATCH", f"{DEPLOYMENTS}/web", {"Content-Type": "application/x-www-form-urlencoded"}, {}, 415,
     {**failure(415, "UnsupportedMediaType")}),
    ("name in the body differs from the URL", "PATCH", f"{DEPLOYMENTS}/other?fieldManager=ci", APPLY, deployment(), 400,
     {**failure(400, "BadRequest"), "message": "the name of the object (web) does not match the name on the URL (other)"}),
    ("list", "GET", f"{DEPLOYMENTS}?labelSelector=app%3Dweb", {}, None, 200,
     {"kind": "DeploymentList", "apiVersion": "apps/v1"}),
    ("unknown resource", "GET", "/apis/apps/v1/namespaces/team/cronjobs", {}, None, 404,
     {**failure(404, "NotFound"), "message": "the server could not find the requested resource"}),
    # apimachinery's ValidateDeleteOptions, answered by the apiserver's rest/delete.go as 422 of DeleteOptions
    ("delete with an unknown propagation policy", "DELETE", f"{DEPLOYMENTS}/web?propagationPolicy=background", {}, None, 422,
     {**failure(422, "Invalid"), "details": {"group": "meta.k8s.io", "kind": "DeleteOptions"}}),
    ("the policy in the body counts too", "DELETE", f"{DEPLOYMENTS}/web", JSON, {"propagationPolicy": "Cascade"}, 422,
     {**failure(422, "Invalid"), "message": 'DeleteOptions.meta.k8s.io "" is invalid: : Invalid value: "Cascade": '
      'DeletionPropagation need to be one of "Foreground", "Background", "Orphan" or nil'}),
    ("delete", "DELETE", f"{DEPLOYMENTS}/web?propagationPolicy=Background", {}, None, 200,
     {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": "web", "group": "apps", "kind": "deployments"}}),
    ("delete again", "DELETE", f"{DEPLOYMENTS}/web", {}, None, 404,
     {**failure(404, "NotFound"), "message": 'deployments.apps "web" not found'}),
]  # fmt: skip


def subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    return expected == actual


@pytest.fixture(scope="module")
def http():
    from kube_emulator import KubeEmulator

    with KubeEmulator(authenticator=AllowAll()) as emulator:
        pool = urllib3.PoolManager(ca_cert_data=emulator.ca_pem, cert_reqs="CERT_REQUIRED")

        def call(method: str, path: str, headers: dict[str, str], body: Any, token: str | None = "t") -> Any:
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            data = json.dumps(body).encode() if body is not None else None
            return pool.request(method, emulator.endpoint + path, headers={**headers, **auth}, body=data)

        yield call


def test_the_api_answers_each_call_like_a_real_api_server(http):
    # Given a fresh emulator, When the calls run in order, Then each answers its status code and body shape
    for title, method, path, headers, body, code, expected in CALLS:
        response = http(method, path, headers, body)
        answer = response.json()
        assert response.status == code, f"{title}: {response.status} {answer}"
        assert subset(expected, answer), f"{title}: {answer}"
        assert response.headers["Content-Type"] == "application/json"


def test_server_maintained_metadata_and_list_items(http):
    # Given a namespace with one applied deployment
    http("POST", NS, JSON, {"metadata": {"name": "meta"}})
    created = http("PATCH", "/apis/apps/v1/namespaces/meta/deployments/web?fieldManager=ci", APPLY, deployment()).json()

    # Then uid, resourceVersion, generation, creationTimestamp and managedFields are set as the API server sets them
    metadata = created["metadata"]
    assert len(metadata["uid"]) == 36 and metadata["resourceVersion"].isdigit()
    assert metadata["creationTimestamp"].endswith("Z")
    assert metadata["managedFields"][0]["manager"] == "ci"
    assert metadata["managedFields"][0]["operation"] == "Apply"
    assert "f:replicas" in metadata["managedFields"][0]["fieldsV1"]["f:spec"]

    # And list items carry no kind/apiVersion (the list does), pods are named <deployment>-<hash>-<5 chars>
    pods = http("GET", "/api/v1/namespaces/meta/pods?labelSelector=app%3Dweb", {}, None).json()
    assert pods["kind"] == "PodList" and pods["metadata"]["resourceVersion"].isdigit()
    (pod,) = pods["items"]
    assert "kind" not in pod
    name_parts = pod["metadata"]["name"].split("-")
    assert name_parts[0] == "web" and len(name_parts[1]) == 10 and len(name_parts[2]) == 5
    assert pod["metadata"]["labels"]["pod-template-hash"] == name_parts[1]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    events = http("GET", "/api/v1/namespaces/meta/events?fieldSelector=involvedObject.kind%3DPod", {}, None).json()
    assert [e["reason"] for e in events["items"]] == ["FailedScheduling"]


def test_authentication_like_eks(http):
    # Anonymous may read /version only; a bad token is 401 with the Status body
    assert http("GET", "/version", {}, None, token=None).status == 200
    anonymous = http("GET", NS, {}, None, token=None)
    assert (anonymous.status, anonymous.json()["reason"]) == (403, "Forbidden")
    refused = http("GET", NS, {}, None, token="")  # empty bearer
    assert refused.status in (401, 403)
    assert refused.json()["kind"] == "Status"


def pod_with(*resources: dict[str, Any]) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": "nginx", "resources": r} for i, r in enumerate(resources)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}}


QOS_NAMESPACES = itertools.count()  # one namespace per case: the module's emulator is shared
GUARANTEED = {"limits": {"cpu": "250m", "memory": "512Mi"}}
EQUAL = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "250m", "memory": "512Mi"}}


@pytest.mark.parametrize(
    ("containers", "qos"),
    [
        ((GUARANTEED,), "Guaranteed"),  # requests default to the limits
        ((EQUAL, GUARANTEED), "Guaranteed"),
        (({},), "BestEffort"),
        (({"requests": {"cpu": "250m"}},), "Burstable"),
        (({"limits": {"cpu": "250m"}},), "Burstable"),  # no memory limit
        (({"requests": {"cpu": "100m"}, "limits": {"cpu": "250m", "memory": "512Mi"}},), "Burstable"),
        ((EQUAL, {}), "Burstable"),
    ],
)
def test_a_created_pod_is_pending_with_the_api_servers_qos_class(http, containers, qos):
    # Given a namespace; When a pod is created directly (not by a ReplicaSet), status sent or not
    namespace = f"qos-{next(QOS_NAMESPACES)}"
    http("POST", NS, JSON, {"metadata": {"name": namespace}})
    sent = {**pod_with(*containers), "status": {"phase": "Running"}}
    created = http("POST", f"{NS}/{namespace}/pods", JSON, sent)
    # Then the API server sets its status as pkg/registry/core/pod's PrepareForCreate does
    assert created.status == 201, created.json()
    assert created.json()["status"] == {"phase": "Pending", "qosClass": qos}
