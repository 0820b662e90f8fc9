"""The emulator authorizes like an EKS API server: access entries and access policies, then RBAC, with
the API server's verbs and 403 messages; docs/eks-access.md's manifests, applied verbatim, are what each step needs.

Requests go over HTTP as a client sends them (a raw request, so the verb, content type and path are exactly what is
authorized); callers are IAM role sessions, as EKS names them after the access entry's default username.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deployments import deployment

from fargate_sandbox.cluster_setup import apply_as_creator, documented_manifests
from kube_emulator import KubeEmulator, rbac
from kube_emulator.auth import Identity
from kube_emulator.eks_access_policies import ACCESS_POLICIES
from kube_emulator.resources import BY_KIND

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "111122223333"
APPLY_PATCH = "application/apply-patch+yaml"


def session(role: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{role}-session"


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


class SessionTokens:
    """Bearer token = the caller's STS ARN (the EKS token check itself is tested in test_kube_emulator_sts_auth)."""

    def authenticate(self, token: str) -> Identity | None:
        return Identity(token) if token.startswith("arn:aws:sts::") else None


@pytest.fixture
def cluster(start_emulator: Callable[..., KubeEmulator]) -> KubeEmulator:
    holder: dict[str, KubeEmulator] = {}
    authorizer = rbac.Authorizer(
        ACCOUNT, lambda kind, namespace: holder["emulator"].store.list(BY_KIND[kind], namespace), ACCESS_POLICIES
    )
    emulator = start_emulator(authenticator=SessionTokens(), authorizer=authorizer, tls=False)
    holder["emulator"] = emulator
    return emulator


def entry(
    emulator: KubeEmulator, role: str, *groups: str, policies: tuple[rbac.AccessPolicyAssociation, ...] = ()
) -> str:
    assert emulator.api.authorizer is not None
    emulator.api.authorizer.add_entry(rbac.AccessEntry(role_arn(role), groups=groups, policies=policies))
    return session(role)


def call(
    emulator: KubeEmulator, caller: str, method: str, path: str, body: Any = None, **query: str
) -> tuple[int, Any]:
    url = emulator.endpoint + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    content_type = APPLY_PATCH if method == "PATCH" else "application/json"
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {caller}")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def apply_namespace(emulator: KubeEmulator, caller: str, name: str) -> tuple[int, Any]:
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    return call(emulator, caller, "PATCH", f"/api/v1/namespaces/{name}", manifest, fieldManager="test")


def apply_deployment(emulator: KubeEmulator, caller: str, namespace: str, name: str) -> tuple[int, Any]:
    manifest = deployment(name, "nginx", container=name)
    manifest["metadata"]["namespace"] = namespace
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    return call(emulator, caller, "PATCH", path, manifest, fieldManager="test")


def admin(emulator: KubeEmulator) -> str:
    return entry(emulator, "Admin", policies=(rbac.AccessPolicyAssociation("AmazonEKSClusterAdminPolicy"),))


def test_the_edit_access_policy_cannot_create_a_namespace_with_the_api_servers_message(cluster: KubeEmulator) -> None:
    editor = entry(cluster, "Editor", policies=(rbac.AccessPolicyAssociation("AmazonEKSEditPolicy"),))
    status, body = apply_namespace(cluster, editor, "team-a")
    assert status == 403
    assert body["reason"] == "Forbidden" and body["details"] == {"name": "team-a", "kind": "namespaces"}
    # A request on a Namespace object is "in" that namespace (requestinfo.go), as real EKS messages show.
    assert body["message"] == (
        f'namespaces "team-a" is forbidden: User "{editor}" cannot patch resource "namespaces" in API group "" '
        'in the namespace "team-a"'
    )
    # while what Edit does grant works: reading namespaces, applying a Deployment in an existing namespace
    assert apply_namespace(cluster, admin(cluster), "team-a")[0] == 201
    assert call(cluster, editor, "GET", "/api/v1/namespaces/team-a")[0] == 200
    assert apply_deployment(cluster, editor, "team-a", "web")[0] == 201


def test_server_side_apply_of_a_new_object_needs_create_as_well_as_patch(cluster: KubeEmulator) -> None:
    apply_namespace(cluster, admin(cluster), "team-b")
    rules = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}
    manifests = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "patcher"},
            "rules": [rules],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "patcher"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "patcher"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "patchers"}],
        },
    ]
    apply_as_creator(cluster, manifests)
    patcher = entry(cluster, "Patcher", "patchers")
    status, body = apply_deployment(cluster, patcher, "team-b", "web")
    # the create check of the PATCH handler (handlers/patch.go), worded by errors.NewForbidden with RBAC's empty reason
    assert (status, body["message"]) == (403, 'deployments.apps "web" is forbidden: ')
    # an object that exists needs patch only
    apply_deployment(cluster, admin(cluster), "team-b", "web")
    assert apply_deployment(cluster, patcher, "team-b", "web")[0] == 200


def test_a_namespace_scoped_association_allows_nothing_outside_its_namespaces(cluster: KubeEmulator) -> None:
    viewer = entry(cluster, "Viewer", policies=(rbac.AccessPolicyAssociation("AmazonEKSViewPolicy", ("carts",)),))
    assert call(cluster, viewer, "GET", "/api/v1/namespaces/carts/pods")[0] == 200
    status, body = call(cluster, viewer, "GET", "/api/v1/pods")
    assert (status, body["message"]) == (
        403,
        f'pods is forbidden: User "{viewer}" cannot list resource "pods" in API group "" at the cluster scope',
    )
    status, body = call(cluster, viewer, "DELETE", "/api/v1/namespaces/carts/pods/p1")
    assert status == 403 and body["message"].endswith(
        'cannot delete resource "pods" in API group "" in the namespace "carts"'
    )


def test_a_role_binding_grants_in_its_namespace_only(cluster: KubeEmulator) -> None:
    for namespace in ("shop", "ops"):
        apply_namespace(cluster, admin(cluster), namespace)
    apply_as_creator(
        cluster,
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "reader", "namespace": "shop"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader", "namespace": "shop"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": session("Reader")}],
            },
        ],
    )
    reader = entry(cluster, "Reader")
    assert call(cluster, reader, "GET", "/api/v1/namespaces/shop/pods")[0] == 200
    assert call(cluster, reader, "GET", "/api/v1/namespaces/ops/pods")[0] == 403


def test_a_principal_without_an_access_entry_is_unauthorized(cluster: KubeEmulator) -> None:
    status, body = call(cluster, session("Stranger"), "GET", "/api/v1/namespaces")
    assert (status, body["reason"]) == (401, "Unauthorized")


def test_the_documented_manifests_grant_each_step_exactly_what_it_does(cluster: KubeEmulator) -> None:
    applied = apply_as_creator(cluster, documented_manifests(ROOT / "docs" / "eks-access.md"))
    assert len(applied) == 12
    roles = {
        "ApplyApp": entry(cluster, "ApplyAppFunctionRole", "fargate-app:apply"),
        "CheckRollout": entry(cluster, "CheckRolloutFunctionRole", "fargate-app:check-rollout"),
        "DeleteApp": entry(cluster, "DeleteAppFunctionRole", "fargate-app:delete"),
        "Compensate": entry(cluster, "CompensateFunctionRole", "fargate-app:rollback"),
    }
    web = "/apis/apps/v1/namespaces/team-c/deployments/web"
    # In order: (step, what it does, its target, the status the cluster answers)
    expected = [
        # ApplyApp creates a missing namespace and applies its Deployment (the old doc's [get, create] could not)
        ("ApplyApp", "GET", "/api/v1/namespaces/team-c", 404),
        ("ApplyApp", "apply Namespace", "team-c", 201),
        ("ApplyApp", "apply Deployment", "team-c", 201),
        # but reads no secrets and deletes no Deployment (only a Service or Ingress a new revision dropped)
        ("ApplyApp", "GET", "/api/v1/namespaces/team-c/secrets", 403),
        ("ApplyApp", "DELETE", web, 403),
        ("ApplyApp", "DELETE", "/api/v1/namespaces/team-c/services/web", 404),
        # Compensate's rollback applies the last good Deployment again, and can neither create a namespace nor delete
        ("Compensate", "apply Deployment", "team-c", 200),
        ("Compensate", "apply Namespace", "team-d", 403),
        ("Compensate", "DELETE", web, 403),
        # CheckRollout reads; it cannot change the Deployment
        ("CheckRollout", "GET", web, 200),
        ("CheckRollout", "GET", "/api/v1/namespaces/team-c/pods", 200),
        ("CheckRollout", "apply Deployment", "team-c", 403),
        # DeleteApp deletes the app's Deployment, never a namespace
        ("DeleteApp", "DELETE", "/api/v1/namespaces/team-c", 403),
        ("DeleteApp", "DELETE", web, 200),
    ]
    observed = []
    for step, action, target, _ in expected:
        role = roles[step]
        if action == "apply Namespace":
            status = apply_namespace(cluster, role, target)[0]
        elif action == "apply Deployment":
            status = apply_deployment(cluster, role, target, "web")[0]
        else:
            status = call(cluster, role, action, target)[0]
        observed.append((step, action, target, status))
    assert observed == expected


def test_decisions_name_what_allowed_them(cluster: KubeEmulator) -> None:
    apply_as_creator(cluster, documented_manifests(ROOT / "docs" / "eks-access.md"))
    check_role = entry(cluster, "CheckRolloutFunctionRole", "fargate-app:check-rollout")
    call(cluster, check_role, "GET", "/api/v1/namespaces/default/pods")
    call(cluster, check_role, "GET", "/api/v1/namespaces/default/secrets")
    assert cluster.api.authorizer is not None
    seen = {(d.verb, d.resource, d.allowed, d.allowed_by) for d in cluster.api.authorizer.decisions}
    assert (
        "list",
        "pods",
        True,
        "ClusterRoleBinding fargate-app-check-rollout → ClusterRole fargate-app-check-rollout rule 1",
    ) in seen
    assert ("list", "secrets", False, "") in seen
