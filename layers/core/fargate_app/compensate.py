"""Step Compensate: undo, newest first, only what the failed provision execution created, then say what failed.

The Catch of every provision Task routes here with the whole state: each ensure-step recorded ``created`` in its
result, so this step knows exactly what is this execution's to delete. Shared things are kept when something else
now depends on them: a Fargate profile another managed app's pods match, a pod execution role another profile uses.
Every delete is idempotent (already gone counts as done), so the state machine may retry this step.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict, Field, ValidationError

from fargate_app.aws.clients import client
from fargate_app.aws.ecr import delete_cache_rule
from fargate_app.aws.eks import delete_fargate_profile
from fargate_app.aws.errors import error_code, translate
from fargate_app.aws.iam import delete_pod_execution_role
from fargate_app.aws.tags import LAST_ENSURED_TAG, execution_tag
from fargate_app.config import Settings
from fargate_app.errors import truncate
from fargate_app.models import ApiModel, CacheRule, FargateProfile, PodExecutionRole, ProvisionRequest
from fargate_app.observability import logger

# Steps after which Kubernetes objects of the app may exist (ApplyApp may fail after the Namespace was applied).
KUBERNETES_STEPS = ("ApplyApp", "CheckRollout")


class FailedProvision(ApiModel):
    """The parts of a failed provision's state that compensation reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")
    request: ProvisionRequest | None = None
    execution_arn: str = ""
    failed_step: str = "unknown"
    error: dict[str, Any] = Field(default_factory=dict)
    pod_execution_role: PodExecutionRole | None = None
    fargate_profile: FargateProfile | None = None
    cache_rule: CacheRule | None = None


class Compensation(ApiModel):
    error: str
    cause: str  # JSON: {"step", "error", "cause", "compensated", "leftovers"}: the Fail state's Cause
    compensated: list[str]
    leftovers: list[str]


def failure_message(cause: Any) -> str:
    """The human sentence of a Lambda error's Cause (a JSON payload with errorMessage), or the Cause itself."""
    if isinstance(cause, str):
        try:
            payload = json.loads(cause)
        except ValueError:
            return truncate(cause, 1000)
        if isinstance(payload, dict) and "errorMessage" in payload:
            return truncate(str(payload["errorMessage"]), 1000)
    return truncate(json.dumps(cause) if not isinstance(cause, str) else cause, 1000)


def parse_failed_state(state: dict[str, Any]) -> FailedProvision:
    if "Error" in state and "error" not in state:
        # ValidateRequest's Catch replaces the state with the error ({"Error", "Cause"}): a console start's input
        # may be an array or a string, to which the error could not be added. Nothing was created yet.
        error = {key: state[key] for key in ("Error", "Cause") if key in state}
        return FailedProvision(failed_step=str(state.get("failedStep", "unknown")), error=error)
    try:
        return FailedProvision.model_validate(state)
    except ValidationError:
        # ValidateRequest failed: the state is the raw input; nothing was created.
        return FailedProvision(failed_step=str(state.get("failedStep", "unknown")), error=state.get("error") or {})


def compensate(settings: Settings, state: dict[str, Any]) -> Compensation:
    """Delete what this execution created, newest first.

    Raises:
        ProfileOperationInProgress: the profile cannot be deleted yet (another operation on the cluster); retried.
        KubernetesUnavailable, AwsThrottled: transient; retried.
    """
    failed = parse_failed_state(state)
    compensated: list[str] = []
    leftovers: list[str] = []
    request = failed.request
    if request is not None and failed.failed_step in KUBERNETES_STEPS:
        from fargate_app.kube.steps import delete_app

        deleted = delete_app(settings, request)
        compensated += [f"{ref.kind} {ref.namespace}/{ref.name}" for ref in deleted.deleted]
    if failed.cache_rule is not None and failed.cache_rule.created:
        delete_cache_rule(failed.cache_rule.ecr_repository_prefix)
        compensated.append(f"pull-through-cache rule {failed.cache_rule.ecr_repository_prefix}")
    deleted_profile = None
    profile = failed.fargate_profile
    if request is not None and profile is not None and profile.created:
        deleted_profile = profile.name if _release_profile(settings, request, profile, compensated, leftovers) else None
    if failed.pod_execution_role is not None and failed.pod_execution_role.created and request is not None:
        _release_role(
            request.cluster, failed.pod_execution_role, deleted_profile, failed.execution_arn, compensated, leftovers
        )

    error = str(failed.error.get("Error") or "States.TaskFailed")
    cause = {
        "step": failed.failed_step,
        "error": error,
        "cause": failure_message(failed.error.get("Cause", "")),
        "compensated": compensated,
        "leftovers": leftovers,
    }
    logger.info("compensated", extra={"failed_step": failed.failed_step, "compensated": compensated})
    return Compensation(error=error, cause=json.dumps(cause), compensated=compensated, leftovers=leftovers)


def _release_profile(
    settings: Settings, request: ProvisionRequest, profile: FargateProfile, done: list[str], kept: list[str]
) -> bool:
    """Delete the profile unless another managed app's pods match it; True when it is being deleted."""
    from fargate_app.kube.usage import other_apps_on_profile

    selectors = [selector.to_json() for selector in profile.selectors]
    users = other_apps_on_profile(settings, request, {"selectors": selectors})
    if users:
        kept.append(f"Fargate profile {profile.name} (kept: it schedules {', '.join(users)})")
        return False
    delete_fargate_profile(profile.cluster, profile.name)
    done.append(f"Fargate profile {profile.name}")
    return True


def _release_role(
    cluster: str,
    role: PodExecutionRole,
    deleted_profile: str | None,
    execution_arn: str,
    done: list[str],
    kept: list[str],
) -> None:
    """The role is per cluster: keep it while any profile of the cluster, other than the one being deleted, uses it,
    or when another execution ensured it after this one (it may be about to create its profile with it)."""
    eks = client("eks")
    try:
        names = eks.list_fargate_profiles(clusterName=cluster).get("fargateProfileNames", [])
        users = [
            name
            for name in names
            if name != deleted_profile
            and eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"].get(
                "podExecutionRoleArn"
            )
            == role.arn
        ]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"list the Fargate profiles of cluster {cluster}") from exc
    if users:
        kept.append(f"IAM role {role.name} (kept: profiles {', '.join(users)} use it)")
        return
    try:
        tags = {tag["Key"]: tag["Value"] for tag in client("iam").list_role_tags(RoleName=role.name)["Tags"]}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return
        raise translate(exc, f"read the tags of IAM role {role.name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"read the tags of IAM role {role.name}") from exc
    last = tags.get(LAST_ENSURED_TAG, "")
    if execution_arn and last not in ("", execution_tag(execution_arn)):
        kept.append(f"IAM role {role.name} (kept: execution {last.rsplit(':', 1)[-1]} ensured it after this one)")
        return
    delete_pod_execution_role(role.name)
    done.append(f"IAM role {role.name}")
