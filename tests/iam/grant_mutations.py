"""Every grant the project makes, and how to take one away in a running sandbox.

A grant is a statement of an inline identity policy of the SAM-translated template (its function, state machine
and EventBridge roles; AWS managed policies are AWS's), or one verb of one rule of a ClusterRole of
docs/eks-access.md. ``drop`` removes it the way an operator would (PutRolePolicy, or applying the edited
ClusterRole) and returns what puts it back; ``allowed`` tells whether a recorded decision was allowed by it alone.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import template_iam

from fargate_sandbox.cluster_setup import apply_as_creator, documented_manifests
from fargate_sandbox.session import SandboxSession

ROOT = Path(__file__).resolve().parents[2]
EKS_ACCESS = ROOT / "docs" / "eks-access.md"


@dataclass(frozen=True)
class IamGrant:
    role: str  # the role's logical id, which is its name in the sandbox
    policy: str
    sid: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.role}/{self.sid}"

    @property
    def principal(self) -> str:
        return self.role

    @property
    def function(self) -> str | None:
        """The function whose role this is (None for a state machine's or a rule's role)."""
        functions = template_iam.translated_stack().function_roles
        return next((function for function, role in functions.items() if role == self.role), None)

    def drop(self, session: SandboxSession) -> Callable[[], None]:
        document = template_iam.translated_stack().roles[self.role].inline_policies[self.policy]
        remaining = [
            statement
            for index, statement in enumerate(document["Statement"])
            if str(statement.get("Sid") or f"#{index}") != self.sid
        ]
        assert len(remaining) == len(document["Statement"]) - 1, f"{self} is not one statement of {self.policy}"
        iam = session.sandbox.boto3_client("iam")

        def put(statements: list[dict[str, Any]]) -> None:
            if statements:
                body = {"Version": "2012-10-17", **document, "Statement": statements}
                iam.put_role_policy(RoleName=self.role, PolicyName=self.policy, PolicyDocument=json.dumps(body))
            else:
                iam.delete_role_policy(RoleName=self.role, PolicyName=self.policy)

        put(remaining)
        return lambda: put(list(document["Statement"]))

    def allowed(self, decision: dict[str, Any]) -> bool:
        return (
            decision["allowed"]
            and decision["principal"] == self.role
            and list(decision["statements"]) == [f"{self.policy}/{self.sid}"]
        )

    def denied(self, decision: dict[str, Any]) -> bool:
        return not decision["allowed"] and decision["principal"] == self.role and decision["action"] in self.actions


@dataclass(frozen=True)
class KubernetesGrant:
    cluster_role: str
    binding: str
    rule: int
    verb: str
    api_group: str
    resources: tuple[str, ...]

    def __str__(self) -> str:
        resources = ",".join(self.resources)
        return f"ClusterRole {self.cluster_role} rule {self.rule}: {self.verb} {resources}"

    @property
    def principal(self) -> str:
        return f"group {self.cluster_role}"

    def drop(self, session: SandboxSession) -> Callable[[], None]:
        original = next(
            m
            for m in documented_manifests(EKS_ACCESS)
            if m["kind"] == "ClusterRole" and m["metadata"]["name"] == self.cluster_role
        )
        edited = copy.deepcopy(original)
        edited["rules"][self.rule]["verbs"] = [v for v in edited["rules"][self.rule]["verbs"] if v != self.verb]
        kubernetes = session.sandbox.kubernetes
        assert kubernetes is not None
        apply_as_creator(kubernetes, [edited])
        return lambda: apply_as_creator(kubernetes, [original])

    def _by(self) -> str:
        return f"ClusterRoleBinding {self.binding} → ClusterRole {self.cluster_role} rule {self.rule}"

    def allowed(self, decision: dict[str, Any]) -> bool:
        return decision["allowed"] and decision["allowed_by"] == self._by() and decision["verb"] == self.verb

    def denied(self, decision: dict[str, Any]) -> bool:
        return (
            not decision["allowed"]
            and decision["verb"] == self.verb
            and decision["api_group"] == self.api_group
            and decision["resource"] in self.resources
        )


Grant = IamGrant | KubernetesGrant


def iam_grants() -> list[IamGrant]:
    return [
        IamGrant(statement.role, statement.policy, statement.sid, tuple(statement.actions))
        for statement in template_iam.statements()
    ]


def kubernetes_grants() -> list[KubernetesGrant]:
    manifests = documented_manifests(EKS_ACCESS)
    bindings = {m["roleRef"]["name"]: m["metadata"]["name"] for m in manifests if m["kind"] == "ClusterRoleBinding"}
    grants = []
    for manifest in manifests:
        if manifest["kind"] != "ClusterRole":
            continue
        name = manifest["metadata"]["name"]
        for index, rule in enumerate(manifest["rules"]):
            for verb in rule["verbs"]:
                (group,) = rule["apiGroups"]
                grants.append(KubernetesGrant(name, bindings[name], index, verb, group, tuple(rule["resources"])))
    return grants
