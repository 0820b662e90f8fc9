"""What the sandbox still holds of an app: checked on the sandbox itself, not taken from the executions' word.

A teardown reports its own ``leftovers`` and a failed provision its compensation's; the sandbox can also look, so
``sandbox run`` adds anything it still finds (and a test through the command line can rely on it).
"""

from __future__ import annotations

from typing import Any

from fargate_app.aws.tags import CREATED_FOR_TAG
from fargate_app.models import APP_NAME_LABEL, ProvisionRequest
from fargate_sandbox.seeds import CLUSTER_NAME
from fargate_sandbox.session import SandboxSession


def cache_prefixes(session: SandboxSession) -> set[str]:
    rules = session.sandbox.boto3_client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    return {rule["ecrRepositoryPrefix"] for rule in rules}


def _kubernetes_leftovers(session: SandboxSession, namespace: str, app: str) -> list[str]:
    kubernetes = session.sandbox.kubernetes
    assert kubernetes is not None
    found = [
        f"Deployment {namespace}/{app}"
        for deployment in kubernetes.objects("Deployment", namespace)
        if deployment["metadata"]["name"] == app
    ]
    found += [
        f"Pod {namespace}/{pod['metadata']['name']}"
        for pod in kubernetes.objects("Pod", namespace)
        if (pod["metadata"].get("labels") or {}).get(APP_NAME_LABEL) == app
    ]
    return found


def after_teardown(session: SandboxSession, outcome: dict[str, Any]) -> list[str]:
    """What a torn-down app left: its Deployment and pods, the Fargate nodes its pods ran on, and the profile its
    provision created (once no profile is CREATING/DELETING any more)."""
    request = outcome["request"]
    found = _kubernetes_leftovers(session, request["namespace"], request["app"])
    kubernetes = session.sandbox.kubernetes
    assert kubernetes is not None
    present_nodes = {node["metadata"]["name"] for node in kubernetes.objects("Node")}
    found += [f"Node {name}" for name in outcome.get("nodes") or [] if name in present_nodes]
    profile = outcome.get("fargateProfile") or {}
    if profile.get("created"):
        for listed in session.sandbox.fargate_profiles(request["cluster"]):
            if listed["fargateProfileName"] == profile.get("name"):
                found.append(f"Fargate profile {listed['fargateProfileName']} ({listed['status']})")
    return found


def after_failure(
    session: SandboxSession, request: ProvisionRequest, prefixes_before: set[str], prefixes_in_use: set[str]
) -> list[str]:
    """What a failed provision left: its Deployment and pods, a profile tagged as created for it, and its cache rule
    if that did not exist before the run and no successful provision of the run uses it."""
    if request.cluster != CLUSTER_NAME:  # the sandbox has one cluster: a request for another created nothing
        return []
    found = _kubernetes_leftovers(session, request.namespace, request.app)
    owner = f"{request.namespace}.{request.app}"
    found += [
        f"Fargate profile {profile['fargateProfileName']} ({profile['status']})"
        for profile in session.sandbox.fargate_profiles(request.cluster)
        if (profile.get("tags") or {}).get(CREATED_FOR_TAG) == owner
    ]
    prefix = request.effective_cache_prefix
    if prefix in cache_prefixes(session) - prefixes_before - prefixes_in_use:
        found.append(f"pull-through-cache rule {prefix}")
    return found


def merge(reported: list[str], observed: list[str]) -> list[str]:
    """The execution's list, then what the sandbox found that it did not mention (by resource name)."""
    merged = list(reported)
    for item in observed:
        name = item.split(" (")[0].rsplit(" ", 1)[-1]
        if not any(name in existing for existing in merged):
            merged.append(item)
    return merged
