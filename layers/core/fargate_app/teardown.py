"""Step ReleaseFargateProfile of the teardown: delete the app's Fargate profile when nothing else needs it.

Fargate profiles are shared: apps whose pods match one reuse it, and each holds it (``holders.py``). So the profile
is deleted only if a provision of this project created it (the execution recorded ``created``, the profile's
``fargate-app/created-for`` tag names the app, or — for an app that reused it — its ``managed-by`` tag is this
project's), no app holds it at that moment (one being provisioned holds it before it applies anything) and nothing
else runs on it: no pod but the app's own that it placed (deleting it would delete them, ours or not) and no other
managed Deployment it selects. The last app out deletes it, whichever created it. The teardown lets go of the
per-cluster pod execution role and the per-upstream cache rule too, and keeps them. What it leaves on purpose is
listed under ``kept`` with the reason and who holds it now: the profile when it is still used, the role, the rule
and its cached repository.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ConfigDict, Field

from fargate_app.aws.clients import client
from fargate_app.aws.eks import delete_fargate_profile
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.tags import CREATED_FOR_TAG, MANAGED_BY_TAG
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.holders import profile_resource, release, release_and_delete, role_resource, rule_resource
from fargate_app.kube.models import CachedImage
from fargate_app.models import (
    CacheRule,
    FargateProfile,
    PodExecutionRole,
    ProfileSelector,
    ProvisionRequest,
    RequestEvent,
    StepModel,
)
from fargate_app.observability import logger


class ProvisionSummary(StepModel):
    model_config = ConfigDict(extra="ignore")
    fargate_profile: FargateProfile | None = None
    pod_execution_role: PodExecutionRole | None = None
    cache_rule: CacheRule | None = None
    image: CachedImage | None = None


class ReleaseProfileEvent(RequestEvent):
    """The teardown's release of the app's profile (``provision``, or found by its tag), or an update's release of
    ``profileName``, the profile its last good revision ran on, which the updated app no longer uses (its labels or
    subnets changed); a profile this stack does not manage is kept either way."""

    provision: ProvisionSummary | None = None
    profile_name: str | None = None


class TeardownInput(StepModel):
    """The teardown workflow's input: the app's normalised request and, when known, what its provision returned
    (``provision`` may be left out: a console start that has no record; the profile is then found by its tag)."""

    model_config = ConfigDict(extra="ignore")
    request: ProvisionRequest
    provision: ProvisionSummary | None = None


class ProfileRelease(StepModel):
    profile: FargateProfile | None
    deleting: bool
    kept: str | None = None
    # Everything the teardown leaves on purpose: [{"<fargateProfile|podExecutionRole|cacheRule|cachedRepository>":
    # name, "reason": why, "holders": the apps holding it now (not for the cached repository)}].
    kept_resources: list[dict[str, Any]] = Field(default_factory=list)


def _release_shared(
    settings: Settings, request: ProvisionRequest, provision: ProvisionSummary | None
) -> list[dict[str, Any]]:
    """Let go of the role and the cache rule the app held (holders.py); both are kept, with who holds them now, and
    so is the cached repository."""
    recorded = provision.pod_execution_role.name if provision and provision.pod_execution_role else None
    if recorded is None:  # a console start without a record: the cluster's role, by its name, reported by none
        from fargate_app.aws.iam import role_name

        release(settings, role_resource(role_name(settings, request.cluster)), request.holder)
    if provision is None or provision.cache_rule is None:  # and the rule of the request's prefix, likewise
        release(settings, rule_resource(request.effective_cache_prefix), request.holder)
    kept: list[dict[str, Any]] = []
    if recorded is not None:
        kept.append(
            {
                "podExecutionRole": recorded,
                "reason": (
                    f"shared by the Fargate profiles of cluster {request.cluster}; deleted with the stack's profiles"
                ),
                "holders": release(settings, role_resource(recorded), request.holder),
            }
        )
    if provision is not None and provision.cache_rule is not None:
        rule = provision.cache_rule
        kept.append(
            {
                "cacheRule": rule.ecr_repository_prefix,
                "reason": f"shared by every image from {rule.upstream_registry_url}",
                "holders": release(settings, rule_resource(rule.ecr_repository_prefix), request.holder),
            }
        )
    if provision is not None and provision.image is not None:
        repository = provision.image.cached.split("@", 1)[0].split("/", 1)[-1]
        kept.append(
            {"cachedRepository": repository, "reason": "the pull-through cache keeps the image for the next pull"}
        )
    return kept


def _released(
    profile: FargateProfile | None, deleting: bool, kept: str | None, shared: list[dict[str, Any]], holders: list[str]
) -> ProfileRelease:
    resources = list(shared)
    if kept is not None and profile is not None:
        resources.insert(0, {"fargateProfile": profile.name, "reason": kept, "holders": holders})
    return ProfileRelease(profile=profile, deleting=deleting, kept=kept, kept_resources=resources)


def _tracked(cluster: str, found: dict[str, Any], created: bool) -> FargateProfile:
    """DescribeFargateProfile's answer as the workflow tracks a profile."""
    return FargateProfile(
        cluster=cluster,
        name=found["fargateProfileName"],
        status=str(found.get("status") or "UNKNOWN"),  # EKS's model makes no output member required
        created=created,
        selectors=[ProfileSelector(namespace=s["namespace"], labels=s.get("labels") or {}) for s in found["selectors"]],
        subnets=sorted(found.get("subnets", [])),
    )


def _describe(cluster: str, name: str) -> dict[str, Any] | None:
    with aws_errors(f"describe Fargate profile {name}", absent={"ResourceNotFoundException"}):
        return client("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]  # type: ignore[no-any-return]
    return None


def _created_for_app(request: ProvisionRequest) -> dict[str, Any] | None:
    """The profile whose tag says a provision of this app created it (when the execution's record is not given)."""
    eks = client("eks")
    with aws_errors(f"list the Fargate profiles of cluster {request.cluster}"):
        for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=request.cluster):
            for name in page.get("fargateProfileNames", []):
                profile = _describe(request.cluster, name)
                if profile and (profile.get("tags") or {}).get(CREATED_FOR_TAG) == f"{request.namespace}.{request.app}":
                    return profile
    return None


def _managed(settings: Settings, profile: dict[str, Any] | None) -> bool:
    """True for a profile some provision of this project created: apps that reused it share it, and whichever of
    them is torn down last deletes it (teardowns run concurrently, so the creator is not necessarily last)."""
    return profile is not None and (profile.get("tags") or {}).get(MANAGED_BY_TAG) == MANAGED_BY


def release_fargate_profile(settings: Settings, event: ReleaseProfileEvent) -> ProfileRelease:
    """Start deleting the app's profile if it is the app's to delete.

    Raises:
        ProfileOperationInProgress: another profile is CREATING/DELETING on the cluster; retried.
        KubernetesForbidden, KubernetesUnavailable: listing the managed apps failed.
    """
    from fargate_app.kube.usage import profile_users

    request = event.request
    provision = event.provision
    # A teardown lets go of everything the app held; an update's release only of the profile it moved away from.
    shared = _release_shared(settings, request, provision) if event.profile_name is None else []
    recorded = provision.fargate_profile if provision else None
    if event.profile_name is not None:
        found = _describe(request.cluster, event.profile_name)
        name: str | None = event.profile_name
    else:
        found = _describe(request.cluster, recorded.name) if recorded else _created_for_app(request)
        name = recorded.name if recorded else (found or {}).get("fargateProfileName")
    resource = profile_resource(request.cluster, name) if name else None
    if found is None:
        if resource is not None:
            release(settings, resource, request.holder)
        reason = None if recorded or event.profile_name else "no profile was created"
        return _released(recorded, False, reason, shared, [])
    assert resource is not None  # found names it
    if not _managed(settings, found) and (event.profile_name is not None or not (recorded and recorded.created)):
        holders = release(settings, resource, request.holder)
        why = (
            "this stack does not manage it"
            if event.profile_name
            else "the provision reused a profile this stack does not manage"
        )
        return _released(_tracked(request.cluster, found, created=False), False, why, shared, holders)
    profile = _tracked(request.cluster, found, created=True)
    users = profile_users(settings, request, found)
    if users:
        holders = release(settings, resource, request.holder)
        return _released(profile, False, f"it still schedules {', '.join(users)}", shared, holders)

    def delete() -> None:
        if found.get("status") != "DELETING":  # another app's teardown may have started it: EKS would refuse again
            delete_fargate_profile(request.cluster, profile.name)
            logger.info("deleting Fargate profile", extra={"profile": profile.name, "cluster": request.cluster})

    released = release_and_delete(settings, resource, request.holder, request.holder, delete)
    if not released.deleted:
        held = f"held by {', '.join(released.holders)}"
        return _released(profile, False, held, shared, released.holders)
    deleting = profile.model_copy(update={"status": "DELETING", "waiting_since": datetime.now(UTC)})
    return _released(deleting, True, None, shared, [])
