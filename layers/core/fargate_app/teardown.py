"""Step ReleaseFargateProfile of the teardown: delete the app's Fargate profile when nothing else needs it.

Fargate profiles are shared: apps whose pods match one reuse it. So the profile is deleted only if a provision of
this project created it (the execution recorded ``created``, the profile's ``fargate-app/created-for`` tag names the
app, or — for an app that reused it — its ``managed-by`` tag is this project's) and no other Deployment this
provisioner manages still has pods it would schedule: the last app out deletes it, whichever created it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ConfigDict

from fargate_app.aws.clients import client
from fargate_app.aws.eks import delete_fargate_profile
from fargate_app.aws.errors import error_code, translate
from fargate_app.aws.tags import CREATED_FOR_TAG, MANAGED_BY_TAG
from fargate_app.config import Settings
from fargate_app.models import ApiModel, FargateProfile, ProfileSelector, ProvisionRequest, RequestEvent
from fargate_app.observability import logger


class ProvisionSummary(ApiModel):
    model_config = ConfigDict(extra="ignore")
    fargate_profile: FargateProfile | None = None


class ReleaseProfileEvent(RequestEvent):
    provision: ProvisionSummary | None = None


class TeardownInput(ApiModel):
    """The teardown workflow's input: the app's normalised request and, when known, what its provision returned
    (``provision`` may be left out: a console start that has no record; the profile is then found by its tag)."""

    model_config = ConfigDict(extra="ignore")
    request: ProvisionRequest
    provision: ProvisionSummary | None = None


class ProfileRelease(ApiModel):
    profile: FargateProfile | None
    deleting: bool
    kept: str | None = None


def _describe(cluster: str, name: str) -> dict[str, Any] | None:
    try:
        return client("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]  # type: ignore[no-any-return]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise translate(exc, f"describe Fargate profile {name}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"describe Fargate profile {name}") from exc


def _created_for_app(request: ProvisionRequest) -> dict[str, Any] | None:
    """The profile whose tag says a provision of this app created it (when the execution's record is not given)."""
    eks = client("eks")
    try:
        for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=request.cluster):
            for name in page.get("fargateProfileNames", []):
                profile = _describe(request.cluster, name)
                if profile and (profile.get("tags") or {}).get(CREATED_FOR_TAG) == f"{request.namespace}.{request.app}":
                    return profile
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"list the Fargate profiles of cluster {request.cluster}") from exc
    return None


def _managed(settings: Settings, profile: dict[str, Any] | None) -> bool:
    """True for a profile some provision of this project created: apps that reused it share it, and whichever of
    them is torn down last deletes it (teardowns run concurrently, so the creator is not necessarily last)."""
    return profile is not None and (profile.get("tags") or {}).get(MANAGED_BY_TAG) == settings.managed_by


def release_fargate_profile(settings: Settings, event: ReleaseProfileEvent) -> ProfileRelease:
    """Start deleting the app's profile if it is the app's to delete.

    Raises:
        ProfileOperationInProgress: another profile is CREATING/DELETING on the cluster; retried.
        KubernetesForbidden, KubernetesUnavailable: listing the managed apps failed.
    """
    from fargate_app.kube.usage import other_apps_on_profile

    request = event.request
    recorded = event.provision.fargate_profile if event.provision else None
    found = _describe(request.cluster, recorded.name) if recorded else _created_for_app(request)
    if recorded is not None and not recorded.created and not _managed(settings, found):
        return ProfileRelease(profile=recorded, deleting=False, kept="the provision reused an existing profile")
    if found is None:
        return ProfileRelease(profile=recorded, deleting=False, kept=None if recorded else "no profile was created")
    users = other_apps_on_profile(settings, request, found)
    profile = FargateProfile(
        cluster=request.cluster,
        name=found["fargateProfileName"],
        status=str(found.get("status") or "UNKNOWN"),  # EKS's model makes no output member required
        created=True,
        selectors=[ProfileSelector(namespace=s["namespace"], labels=s.get("labels") or {}) for s in found["selectors"]],
        subnets=sorted(found.get("subnets", [])),
    )
    if users:
        return ProfileRelease(profile=profile, deleting=False, kept=f"it still schedules {', '.join(users)}")
    if found.get("status") != "DELETING":  # another app's teardown may have started it: EKS would refuse a second
        delete_fargate_profile(request.cluster, profile.name)
        logger.info("deleting Fargate profile", extra={"profile": profile.name, "cluster": request.cluster})
    deleting = profile.model_copy(update={"status": "DELETING", "waiting_since": datetime.now(UTC)})
    return ProfileRelease(profile=deleting, deleting=True)
