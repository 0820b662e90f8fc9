"""Step Compensate: undo, newest first, only what the failed provision execution created, then say what failed.

The Catch of every provision Task routes here with the whole state: each ensure-step recorded ``created`` in its
result, so this step knows exactly what is this execution's to delete. The app lets go of the shared role, profile
and cache rule it took (``holders.py``), and one this execution created is deleted only when no app holds it at that
moment (another provision that took it meanwhile, even one that has not applied anything yet, keeps it) and nothing
else depends on it: a Fargate profile that places pods, a pod execution role another profile uses. A failed update
does not delete the app's objects: it applies the last good revision again, and keeps what that revision holds.
Every delete is idempotent (already gone counts as done), so the state machine may retry this step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from fargate_app.aws.clients import client
from fargate_app.aws.ecr import delete_cache_rule
from fargate_app.aws.eks import delete_fargate_profile
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.iam import delete_pod_execution_role
from fargate_app.config import Settings
from fargate_app.errors import ClusterNotFound, FargateAppError, RetryableError, truncate
from fargate_app.holders import profile_resource, release, release_and_delete, role_resource, rule_resource
from fargate_app.inventory import FAILED, RUNNING
from fargate_app.models import CacheRule, FargateProfile, PodExecutionRole, ProvisionRequest, StepModel
from fargate_app.observability import logger

# Steps after which Kubernetes objects of the app may exist (ApplyApp may fail after the Namespace was applied).
KUBERNETES_STEPS = ("ApplyApp", "CheckRollout")


class FailedProvision(StepModel):
    """The parts of a failed provision's state that compensation reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")
    request: ProvisionRequest | None = None
    execution_arn: str = ""
    failed_step: str = "unknown"
    error: dict[str, Any] = Field(default_factory=dict)
    pod_execution_role: PodExecutionRole | None = None
    fargate_profile: FargateProfile | None = None
    cache_rule: CacheRule | None = None
    # An update's last good revision (ValidateRequest carries it unchecked): ApplyApp's input of that revision.
    previous: dict[str, Any] | None = None

    @property
    def previous_revision(self) -> str | None:
        """The last good revision's execution name, when this execution was an update."""
        if self.previous is None:
            return None
        return str(self.previous.get("executionArn") or "unknown").rsplit(":", 1)[-1]


class Compensation(StepModel):
    error: str
    # JSON: {"step", "error", "cause", "compensated", "leftovers", "kept", "rolledBackTo", "compensationFailed"}: the
    # Fail's Cause. leftovers: what should be gone and is not; kept: what this execution made that something else now
    # uses; rolledBackTo: the revision (execution name) a failed update applied again, or null.
    cause: str
    compensated: list[str]
    leftovers: list[str]
    kept: list[str] = Field(default_factory=list)
    rolled_back_to: str | None = None
    # What the app inventory records: the app still runs its last good revision, or it failed.
    app_state: Literal["RUNNING", "FAILED"] = FAILED


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
    try:
        return FailedProvision.model_validate(state)
    except ValidationError:
        # Not a state a step after ValidateRequest left (those carry the validated request): report, delete nothing.
        return FailedProvision(failed_step=str(state.get("failedStep", "unknown")), error=state.get("error") or {})


def compensate(settings: Settings, state: dict[str, Any], *, failed_before: str | None = None) -> Compensation:
    """Delete what this execution created, newest first, and report the step's failure.

    The report is always the failed step's error: an undo that fails for good is listed among the leftovers, with
    ``compensationFailed``, and the others still run. With ``failed_before`` (the state machine's retries of this
    step ran out, with that error), nothing is attempted: what the execution created is listed as left behind.

    Raises:
        ProfileOperationInProgress: the profile cannot be deleted yet (another operation on the cluster); retried.
        KubernetesUnavailable, AwsThrottled: transient; retried.
    """
    failed = parse_failed_state(state)
    compensated: list[str] = []
    leftovers: list[str] = []
    kept: list[str] = []  # created by this execution, but now used by something else: kept on purpose
    rolled_back: list[str] = []  # the revision a failed update applied again
    if failed_before is not None:
        leftovers = [f"{name} (not undone: {failed_before})" for name in _created(failed)]
    else:
        for name, undo in _undo_steps(settings, failed, compensated, kept, rolled_back):
            try:
                undo()
            except RetryableError:
                raise
            except FargateAppError as exc:
                leftovers.append(f"{name} (could not be undone: {exc})")
    error = str(failed.error.get("Error") or "States.TaskFailed")
    cause = {
        "step": failed.failed_step,
        "error": error,
        "cause": failure_message(failed.error.get("Cause", "")),
        "compensated": compensated,
        "leftovers": leftovers,
        "kept": kept,
        "rolledBackTo": rolled_back[0] if rolled_back else None,
        "compensationFailed": failed_before is not None or any("(could not be undone" in item for item in leftovers),
    }
    logger.info(
        "compensated",
        extra={
            "failed_step": failed.failed_step,
            "compensated": compensated,
            "kept": kept,
            "rolled_back_to": cause["rolledBackTo"],
        },
    )
    return Compensation(
        error=error,
        cause=json.dumps(cause),
        compensated=compensated,
        leftovers=leftovers,
        kept=kept,
        rolled_back_to=cause["rolledBackTo"],
        app_state=RUNNING if rolled_back else FAILED,
    )


def _created(failed: FailedProvision) -> list[str]:
    """What the failed execution created, by name (the app's objects when it got as far as applying them)."""
    request = failed.request
    names = []
    if request is not None and failed.failed_step in KUBERNETES_STEPS:
        names.append(_objects_name(failed, request))
    if failed.cache_rule is not None and failed.cache_rule.created:
        names.append(f"pull-through-cache rule {failed.cache_rule.ecr_repository_prefix}")
    if failed.fargate_profile is not None and failed.fargate_profile.created:
        names.append(f"Fargate profile {failed.fargate_profile.name}")
    if failed.pod_execution_role is not None and failed.pod_execution_role.created:
        names.append(f"IAM role {failed.pod_execution_role.name}")
    return names


def _objects_name(failed: FailedProvision, request: ProvisionRequest) -> str:
    name = f"the objects of app {request.namespace}/{request.app}"
    revision = failed.previous_revision
    return name if revision is None else f"{name} (to roll back to {revision})"


def _undo_steps(
    settings: Settings, failed: FailedProvision, compensated: list[str], kept: list[str], rolled_back: list[str]
) -> list[tuple[str, Callable[[], None]]]:
    """(name, undo) for each thing the execution created, newest first; each undo appends to ``compensated`` what
    it deleted, or to ``kept`` what it left because something else uses it. A failed update's objects are not
    deleted: the last good revision is applied again (``rolled_back`` gets its name), so the app keeps running."""
    request = failed.request
    steps: list[tuple[str, Callable[[], None]]] = []
    released: list[str] = []  # the profile being deleted, for the role's check
    previous, revision = failed.previous, failed.previous_revision

    if request is not None and failed.failed_step in KUBERNETES_STEPS and previous is not None and revision:

        def restore_previous() -> None:
            from fargate_app.kube.models import ApplyAppEvent
            from fargate_app.kube.steps import apply_app

            event = ApplyAppEvent.parse(previous, region=settings.region, account=settings.account_id)
            restored = apply_app(settings, event)
            compensated.append(f"app {request.namespace}/{request.app} rolled back to {revision}")
            compensated.extend(f"{ref.kind} {ref.namespace}/{ref.name} (pruned)" for ref in restored.pruned)
            rolled_back.append(revision)

        steps.append((_objects_name(failed, request), restore_previous))
    elif request is not None and failed.failed_step in KUBERNETES_STEPS:

        def delete_objects() -> None:
            from fargate_app.kube.steps import delete_app

            try:
                deleted = delete_app(settings, request)
            except ClusterNotFound:  # nothing of the app can exist on a cluster that does not
                return
            compensated.extend(f"{ref.kind} {ref.namespace}/{ref.name}" for ref in deleted.deleted)

        steps.append((f"the objects of app {request.namespace}/{request.app}", delete_objects))
    holder, claimant = request.holder if request else "", failed.execution_arn or "compensation"
    rule = failed.cache_rule
    if request is not None and rule is not None and _released_by_failure(failed, rule.ecr_repository_prefix, "rule"):
        prefix = rule.ecr_repository_prefix

        def release_rule() -> None:
            delete = (lambda: delete_cache_rule(prefix)) if rule.created else None
            released = release_and_delete(settings, rule_resource(prefix), holder, claimant, delete)
            if released.deleted:
                compensated.append(f"pull-through-cache rule {prefix}")
            elif rule.created:
                kept.append(f"pull-through-cache rule {prefix} (kept: held by {', '.join(released.holders)})")

        steps.append((f"pull-through-cache rule {prefix}", release_rule))
    profile = failed.fargate_profile
    if request is not None and profile is not None and _released_by_failure(failed, profile.name, "profile"):

        def release_profile() -> None:
            if _release_profile(settings, request, profile, claimant, compensated, kept):
                released.append(profile.name)

        steps.append((f"Fargate profile {profile.name}", release_profile))
    role = failed.pod_execution_role
    if request is not None and role is not None and previous is None:

        def release_role() -> None:
            deleted_profile = released[0] if released else None
            _release_role(settings, request, role, deleted_profile, claimant, compensated, kept)

        steps.append((f"IAM role {role.name}", release_role))
    return steps


# Where a last good revision (inventory.last_good_revision) names the shared resource of each kind it holds.
_HELD_BY_REVISION = {"rule": "cacheRulePrefix", "profile": "fargateProfileName"}


def _released_by_failure(failed: FailedProvision, name: str, kind: Literal["rule", "profile"]) -> bool:
    """Whether the failed execution lets go of the rule or profile it took: a first provision lets go of all; a
    failed update keeps what its last good revision (running again) holds, and lets go of what it took besides."""
    if failed.previous is None:
        return True
    held = failed.previous.get(_HELD_BY_REVISION[kind])
    return isinstance(held, str) and held != name


def _release_profile(
    settings: Settings,
    request: ProvisionRequest,
    profile: FargateProfile,
    claimant: str,
    done: list[str],
    kept: list[str],
) -> bool:
    """Let go of the profile; delete it if this execution created it and nothing holds it (holders.py) or runs on
    it (deleting it deletes its pods, anyone's); True when being deleted."""
    from fargate_app.kube.usage import profile_users

    users: list[str] = []
    if profile.created:
        selectors = [selector.to_json() for selector in profile.selectors]
        users = profile_users(settings, request, {"fargateProfileName": profile.name, "selectors": selectors})
    delete = (lambda: delete_fargate_profile(profile.cluster, profile.name)) if profile.created and not users else None
    released = release_and_delete(
        settings, profile_resource(profile.cluster, profile.name), request.holder, claimant, delete
    )
    if released.deleted:
        done.append(f"Fargate profile {profile.name}")
    elif users:
        kept.append(f"Fargate profile {profile.name} (kept: it schedules {', '.join(users)})")
    elif profile.created:
        kept.append(f"Fargate profile {profile.name} (kept: held by {', '.join(released.holders)})")
    return released.deleted


def _release_role(
    settings: Settings,
    request: ProvisionRequest,
    role: PodExecutionRole,
    deleted_profile: str | None,
    claimant: str,
    done: list[str],
    kept: list[str],
) -> None:
    """The role is per cluster: let go of it, and delete it if this execution created it, no app holds it and no
    profile of the cluster, other than the one being deleted, uses it."""
    if not role.created:
        release(settings, role_resource(role.name), request.holder)
        return
    eks = client("eks")
    users: list[str] = []
    # absent: the cluster is gone, so none of its profiles uses the role
    with aws_errors(f"list the Fargate profiles of cluster {request.cluster}", absent={"ResourceNotFoundException"}):
        names = eks.list_fargate_profiles(clusterName=request.cluster).get("fargateProfileNames", [])
        users = [
            name
            for name in names
            if name != deleted_profile
            and eks.describe_fargate_profile(clusterName=request.cluster, fargateProfileName=name)[
                "fargateProfile"
            ].get("podExecutionRoleArn")
            == role.arn
        ]
    delete = None if users else (lambda: delete_pod_execution_role(role.name))
    released = release_and_delete(settings, role_resource(role.name), request.holder, claimant, delete)
    if released.deleted:
        done.append(f"IAM role {role.name}")
    elif users:
        kept.append(f"IAM role {role.name} (kept: profiles {', '.join(users)} use it)")
    else:
        kept.append(f"IAM role {role.name} (kept: held by {', '.join(released.holders)})")
