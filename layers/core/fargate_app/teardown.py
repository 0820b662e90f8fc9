"""Step ReleaseFargateProfile of the teardown: delete the app's Fargate profile when nothing else needs it.

Fargate profiles are shared: apps whose pods match one reuse it. So the profile is deleted only if a provision of
this project created it (the execution recorded ``created``, the profile's ``fargate-app/created-for`` tag names the
app, or — for an app that reused it — its ``managed-by`` tag is this project's) and nothing else uses it: no pod but
the app's own that it placed (deleting it would delete them, ours or not) and no other managed Deployment it selects.
The last app out deletes it, whichever created it. What the teardown leaves on purpose is listed under ``kept``
with the reason: the profile when it is still used, the per-cluster pod execution role, the per-upstream cache rule
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
    # name, "reason": why}].
    kept_resources: list[dict[str, str]] = Field(default_factory=list)


def _shared_kept(provision: ProvisionSummary | None, cluster: str) -> list[dict[str, str]]:
    """The shared resources a teardown never deletes, as the provision recorded them."""
    if provision is None:
        return []
    kept = []
    if provision.pod_execution_role is not None:
        kept.append(
            {
                "podExecutionRole": provision.pod_execution_role.name,
                "reason": f"shared by the Fargate profiles of cluster {cluster}; deleted with the stack's profiles",
            }
        )
    if provision.cache_rule is not None:
        rule = provision.cache_rule
        kept.append(
            {
                "cacheRule": rule.ecr_repository_prefix,
                "reason": f"shared by every image from {rule.upstream_registry_url}",
            }
        )
    if provision.image is not None:
        repository = provision.image.cached.split("@", 1)[0].split("/", 1)[-1]
        kept.append(
            {"cachedRepository": repository, "reason": "the pull-through cache keeps the image for the next pull"}
        )
    return kept


def _released(
    profile: FargateProfile | None, deleting: bool, kept: str | None, provision: ProvisionSummary | None, cluster: str
) -> ProfileRelease:
    resources = _shared_kept(provision, cluster)
    if kept is not None and profile is not None:
        resources.insert(0, {"fargateProfile": profile.name, "reason": kept})
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
    if event.profile_name is not None:
        found = _describe(request.cluster, event.profile_name)
        if found is not None and not _managed(settings, found):
            return _released(
                _tracked(request.cluster, found, created=False),
                False,
                "this stack does not manage it",
                None,
                request.cluster,
            )
        if found is None:
            return _released(None, False, None, None, request.cluster)
    else:
        recorded = provision.fargate_profile if provision else None
        found = _describe(request.cluster, recorded.name) if recorded else _created_for_app(request)
        if recorded is not None and not recorded.created and not _managed(settings, found):
            return _released(
                recorded, False, "the provision reused a profile this stack does not manage", provision, request.cluster
            )
        if found is None:
            return _released(
                recorded, False, None if recorded else "no profile was created", provision, request.cluster
            )
    users = profile_users(settings, request, found)
    profile = _tracked(request.cluster, found, created=True)
    if users:
        return _released(profile, False, f"it still schedules {', '.join(users)}", provision, request.cluster)
    if found.get("status") != "DELETING":  # another app's teardown may have started it: EKS would refuse a second
        delete_fargate_profile(request.cluster, profile.name)
        logger.info("deleting Fargate profile", extra={"profile": profile.name, "cluster": request.cluster})
    deleting = profile.model_copy(update={"status": "DELETING", "waiting_since": datetime.now(UTC)})
    return _released(deleting, True, None, provision, request.cluster)
