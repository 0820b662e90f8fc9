"""Authorization as an EKS API server does it: EKS access entries and their access policies, then Kubernetes RBAC.

An authenticated IAM principal is looked up among the cluster's access entries (EKS user guide, "Grant IAM users
access to Kubernetes with EKS access entries"): its Kubernetes username (by default, for a role,
``arn:aws:sts::<account>:assumed-role/<role>/{{SessionName}}``) and ``kubernetesGroups``, plus
``system:authenticated``. A request is then allowed when an access policy associated with the entry allows it in
its scope (the cluster, or listed namespaces), or when RBAC does (Kubernetes documentation, "Using RBAC
Authorization"): a ClusterRoleBinding or, in the request's namespace, a RoleBinding whose subject is the user or one
of its groups, whose role has a rule matching the request's API group, resource (``resource/subresource``), verb
and name. Non-resource paths (discovery, health) are allowed to every authenticated user, as the bootstrap roles
``system:discovery`` and ``system:public-info-viewer`` do. Denied: 403 ``Forbidden`` with the API server's message
(``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go``, ``forbiddenMessage``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kube_emulator.resources import ApiError

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class Attributes:
    """What a request asks (the API server's ``authorizer.Attributes``)."""

    verb: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    """One kind of request and its answer, counted in ``Authorizer.decisions``."""

    user: str
    verb: str
    api_group: str
    resource: str  # resource[/subresource]
    namespace: str
    allowed: bool
    allowed_by: str  # the access policy or binding → role → rule that allowed it
    origin: str  # the test that made it, when under pytest


def origin() -> str:
    """The pytest test running in this process (its node id), or "" outside pytest: who a decision was made for."""
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_object(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            tuple(rule.get("apiGroups") or ()),
            tuple(rule.get("resources") or ()),
            tuple(rule.get("verbs") or ()),
            tuple(rule.get("resourceNames") or ()),
            tuple(rule.get("nonResourceURLs") or ()),
        )

    def allows(self, request: Attributes) -> bool:
        if "*" not in self.verbs and request.verb not in self.verbs:
            return False
        if not request.resource_request:
            return any(
                url == request.path or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        if "*" not in self.api_groups and request.api_group not in self.api_groups:
            return False
        combined = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        if not any(
            wanted in ("*", combined) or (request.subresource and wanted == f"*/{request.subresource}")
            for wanted in self.resources
        ):
            return False
        return not self.resource_names or request.name in self.resource_names


@dataclass(frozen=True)
class AccessPolicyAssociation:
    policy: str  # e.g. "AmazonEKSViewPolicy"
    namespaces: tuple[str, ...] = ()  # empty: the cluster scope


@dataclass(frozen=True)
class AccessEntry:
    """An EKS access entry of the cluster (what CreateAccessEntry and AssociateAccessPolicy record)."""

    principal_arn: str  # an IAM role or user ARN
    username: str | None = None  # None: EKS's default for the principal
    groups: tuple[str, ...] = ()
    policies: tuple[AccessPolicyAssociation, ...] = ()


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)
    policies: tuple[AccessPolicyAssociation, ...] = field(default=())


def forbidden(user: User, request: Attributes, qualified_resource: str) -> ApiError:
    """The API server's 403 for an RBAC denial (``forbiddenMessage`` + ``errors.NewForbidden``)."""
    if not request.resource_request:
        message = f'forbidden: User "{user.name}" cannot {request.verb} path "{request.path}"'
        return ApiError(403, "Forbidden", message, {})
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    if request.namespace:
        why = (
            f'User "{user.name}" cannot {request.verb} resource "{resource}" in API group "{request.api_group}" '
            f'in the namespace "{request.namespace}"'
        )
    else:
        why = (
            f'User "{user.name}" cannot {request.verb} resource "{resource}" in API group "{request.api_group}" '
            "at the cluster scope"
        )
    subject = f'{qualified_resource} "{request.name}"' if request.name else qualified_resource
    details: dict[str, Any] = {"name": request.name} if request.name else {}
    if request.api_group:
        details["group"] = request.api_group
    details["kind"] = request.resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", details)


def forbidden_to_create(qualified_resource: str, name: str, reason: str = "") -> ApiError:
    """The 403 of a create that a server-side apply (or a PUT) turns into: the PATCH handler authorizes ``create``
    itself (``handlers/patch.go`` → ``withAuthorization`` in ``handlers/update.go``) and words the error as
    ``errors.NewForbidden`` with the authorizer's reason, which RBAC leaves empty."""
    details = {"name": name, "kind": qualified_resource.split(".", 1)[0]}
    if "." in qualified_resource:
        details["group"] = qualified_resource.split(".", 1)[1]
    return ApiError(403, "Forbidden", f'{qualified_resource} "{name}" is forbidden: {reason}', details)


class Authorizer:
    """EKS access entries (installed by the sandbox, as CloudFormation creates them) and RBAC objects (read from
    the emulator's store at each request, so an applied binding counts at once)."""

    def __init__(self, account: str, rbac_objects: Any, access_policies: Mapping[str, Iterable[Rule]]) -> None:
        """
        Args:
            rbac_objects: ``(kind, namespace) -> list of stored objects`` (the store's RBAC resources).
            access_policies: access policy name → its rules, as the EKS user guide lists them.
        """
        self.account = account
        self._objects = rbac_objects
        self._access_policies = {name: tuple(rules) for name, rules in access_policies.items()}
        self._entries: dict[str, AccessEntry] = {}
        self._lock = threading.Lock()
        self.enabled = True
        self.decisions: dict[Decision, int] = {}

    # --- identities -------------------------------------------------------------------------------------------------
    def set_entries(self, entries: Iterable[AccessEntry]) -> None:
        with self._lock:
            self._entries = {entry.principal_arn: entry for entry in entries}

    def add_entry(self, entry: AccessEntry) -> None:
        with self._lock:
            self._entries[entry.principal_arn] = entry

    def user_for(self, caller_arn: str) -> User | None:
        """The Kubernetes user an IAM caller is, through its access entry; None when it has none (EKS answers 401).

        ``caller_arn`` is what STS names: ``arn:aws:sts::<account>:assumed-role/<role>/<session>`` or an IAM user.
        """
        principal = caller_arn
        session = ""
        if ":assumed-role/" in caller_arn:
            role, _, session = caller_arn.split(":assumed-role/", 1)[1].partition("/")
            principal = f"arn:aws:iam::{self.account}:role/{role}"
        with self._lock:
            entry = self._entries.get(principal)
            if entry is None and ":role/" in principal:
                # An entry may name the role with its path; match on the role's name.
                name = principal.rsplit("/", 1)[-1]
                entry = next(
                    (e for p, e in self._entries.items() if p.rsplit("/", 1)[-1] == name and ":role/" in p), None
                )
        if entry is None:
            return None
        default = (
            caller_arn
            if not session
            else f"arn:aws:sts::{self.account}:assumed-role/{principal.rsplit('/', 1)[-1]}/{{{{SessionName}}}}"
        )
        name = (entry.username or default).replace("{{SessionName}}", session)
        return User(name, (*entry.groups, AUTHENTICATED), entry.policies)

    # --- decisions --------------------------------------------------------------------------------------------------
    def allowed(self, user: User, request: Attributes) -> bool:
        allowed_by = self._decide(user, request)
        key = Decision(
            user.name,
            request.verb,
            request.api_group,
            request.resource + (f"/{request.subresource}" if request.subresource else ""),
            request.namespace,
            allowed_by is not None,
            allowed_by or "",
            origin(),
        )
        with self._lock:
            self.decisions[key] = self.decisions.get(key, 0) + 1
        return allowed_by is not None

    def _decide(self, user: User, request: Attributes) -> str | None:
        """What allows the request (an access policy, or a binding → role → rule), or None when nothing does."""
        if not self.enabled:
            return "authorization off"
        if MASTERS in user.groups:
            return f"group {MASTERS}"
        if not request.resource_request:
            return "system:discovery"  # system:discovery / system:public-info-viewer: every authenticated user
        for association in user.policies:
            if association.namespaces and request.namespace not in association.namespaces:
                continue
            for index, rule in enumerate(self._access_policies.get(association.policy, ())):
                if rule.allows(request):
                    return f"access policy {association.policy} rule {index}"
        subjects = {("User", user.name), *(("Group", group) for group in user.groups)}
        for binding in self._objects("ClusterRoleBinding", None):
            if self._bound(binding, subjects):
                found = self._role_allows("ClusterRole", None, binding, request)
                if found is not None:
                    return f"ClusterRoleBinding {binding['metadata']['name']} → {found}"
        if request.namespace:
            for binding in self._objects("RoleBinding", request.namespace):
                reference = binding.get("roleRef") or {}
                kind = "ClusterRole" if reference.get("kind") == "ClusterRole" else "Role"
                if self._bound(binding, subjects):
                    found = self._role_allows(kind, request.namespace, binding, request)
                    if found is not None:
                        return f"RoleBinding {request.namespace}/{binding['metadata']['name']} → {found}"
        return None

    @staticmethod
    def _bound(binding: Mapping[str, Any], subjects: set[tuple[str, str]]) -> bool:
        return any((subject.get("kind"), subject.get("name")) in subjects for subject in binding.get("subjects") or [])

    def _role_allows(
        self, kind: str, namespace: str | None, binding: Mapping[str, Any], request: Attributes
    ) -> str | None:
        name = (binding.get("roleRef") or {}).get("name")
        for role in self._objects(kind, namespace if kind == "Role" else None):
            if role["metadata"]["name"] == name:
                for index, rule in enumerate(role.get("rules") or []):
                    if Rule.from_object(rule).allows(request):
                        return f"{kind} {name} rule {index}"
        return None
