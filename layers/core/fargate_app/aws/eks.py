"""Steps EnsureFargateProfile and CheckFargateProfile, and profile deletion for compensation and teardown.

EKS rules this module lives with (EKS API reference, CreateFargateProfile; EKS user guide, "Fargate profile"):
profiles are immutable; a cluster allows one profile CREATING or DELETING at a time (ResourceInUseException) and
10 profiles in all (service quotas); at most 5 selectors, each with a namespace; subnets must be private; a
selector's namespace and label values may hold ``*`` and ``?`` wildcards; a pod matching several profiles goes to
the one its ``eks.amazonaws.com/fargate-profile`` label names, else to any of them.

Strategies (the stack's FargateProfileStrategy): *shared* — one profile per (cluster, subnet set, pod execution
role), selector ``namespace: "*"`` plus the managed-by label every managed pod carries, so only the first app of a
cluster waits for a profile; *per-namespace* — one per (namespace, labels), as before, refused with
ProfileQuotaExceeded before anything is created when the cluster has no room for it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors, error_code, error_message, translate
from fargate_app.aws.tags import CREATED_BY_TAG, CREATED_FOR_TAG, MANAGED_BY_TAG, execution_tag
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.errors import (
    ClusterNotActive,
    ClusterNotFound,
    ClusterVersionUnsupported,
    IamRoleNotYetPropagated,
    InvalidRequest,
    PollTimeout,
    ProfileCreateFailed,
    ProfileNotYetActive,
    ProfileNotYetDeleted,
    ProfileOperationInProgress,
    ProfileQuotaExceeded,
    SubnetNotFound,
    SubnetNotPrivate,
)
from fargate_app.holders import profile_resource, taken
from fargate_app.models import MANAGED_BY_LABEL, FargateProfile, ProfileSelector, ProvisionRequest
from fargate_app.observability import logger

USABLE_STATUSES = ("ACTIVE", "CREATING")
MAX_PROFILES_PER_CLUSTER = 10  # Amazon EKS service quotas, "Fargate profiles per cluster" (not adjustable)


def selector_matches(selector: dict[str, Any], namespace: str, pod_labels: dict[str, str]) -> bool:
    """True when a pod in ``namespace`` with ``pod_labels`` matches the selector, wildcards included."""
    if not fnmatchcase(namespace, selector.get("namespace", "")):
        return False
    for key, pattern in (selector.get("labels") or {}).items():
        if key not in pod_labels or not fnmatchcase(pod_labels[key], pattern):
            return False
    return True


def profile_matches(profile: dict[str, Any], namespace: str, pod_labels: dict[str, str]) -> bool:
    return any(selector_matches(s, namespace, pod_labels) for s in profile.get("selectors", []))


# The oldest Kubernetes the app's objects run on: networking.k8s.io/v1 Ingress (1.19) and server-side apply GA
# (1.22); EKS's own oldest extended-support version is later still.
MIN_KUBERNETES_VERSION = (1, 22)


def profile_name(settings: Settings, request: ProvisionRequest) -> str:
    """Stable per (namespace, labels): apps that share them share the profile. EKS names are at most 100 chars."""
    labels = hashlib.sha256(json.dumps(request.labels, sort_keys=True).encode()).hexdigest()[:8]
    return f"{settings.profile_prefix}-{request.namespace}-{labels}"[:100]


def shared_profile_name(settings: Settings, subnets: list[str], role_arn: str) -> str:
    """Stable per (subnet set, pod execution role); short enough to be a pod label value (63)."""
    digest = hashlib.sha256(json.dumps([sorted(subnets), role_arn]).encode()).hexdigest()[:8]
    return f"{settings.profile_prefix}-shared-{digest}"[:63]


def managed_pod_labels(request: ProvisionRequest) -> dict[str, str]:
    """The labels the app's pods carry (manifests add the managed-by label to the request's)."""
    return {**request.pod_labels, MANAGED_BY_LABEL: MANAGED_BY}


def reusable_profile(
    settings: Settings, request: ProvisionRequest, profiles: list[dict[str, Any]], subnets: list[str]
) -> dict[str, Any] | None:
    """An ACTIVE or CREATING profile that schedules the app's pods; under the shared strategy, in the same subnets
    (pods of another subnet set must not land in these)."""
    labels = managed_pod_labels(request)
    for profile in sorted(profiles, key=lambda p: str(p.get("fargateProfileName"))):
        if profile.get("status") not in USABLE_STATUSES or not profile_matches(profile, request.namespace, labels):
            continue
        if settings.profile_strategy == "shared" and sorted(profile.get("subnets") or []) != sorted(subnets):
            continue
        return profile
    return None


def check_profile_quota(settings: Settings, request: ProvisionRequest, subnets: list[str]) -> None:
    """Before anything is created: if the app needs a new profile (in ``subnets``), the cluster must have room.

    Raises:
        ProfileQuotaExceeded: no profile schedules the app and the cluster has EKS's 10 already.
    """
    profiles = _list_profiles(request.cluster)
    if reusable_profile(settings, request, profiles, subnets) is None and len(profiles) >= MAX_PROFILES_PER_CLUSTER:
        raise _quota_exceeded(settings, request.cluster, len(profiles))


def _quota_exceeded(settings: Settings, cluster: str, count: int) -> ProfileQuotaExceeded:
    fix = (
        "switch the stack's FargateProfileStrategy to shared (one profile for every app)"
        if settings.profile_strategy == "per-namespace"
        else "delete profiles you no longer need"
    )
    return ProfileQuotaExceeded(
        f"cluster {cluster} has {count} Fargate profiles, EKS's limit of {MAX_PROFILES_PER_CLUSTER} per cluster, and "
        f"the app needs a new one: {fix}"
    )


def describe_active_cluster(cluster: str) -> dict[str, Any]:
    """Raises: ClusterNotFound, ClusterNotActive, AwsThrottled."""

    def not_found(_: str) -> ClusterNotFound:
        return ClusterNotFound(f"EKS cluster {cluster} does not exist in this account and region")

    with aws_errors(f"describe EKS cluster {cluster}", raises={"ResourceNotFoundException": not_found}):
        description: dict[str, Any] = client("eks").describe_cluster(name=cluster)["cluster"]
    if description.get("status") != "ACTIVE":
        raise ClusterNotActive(
            f"EKS cluster {cluster} is {description.get('status')}; Fargate profiles need an ACTIVE cluster"
        )
    return description


def _list_profiles(cluster: str) -> list[dict[str, Any]]:
    eks = client("eks")
    profiles = []
    with aws_errors(f"list Fargate profiles of cluster {cluster}"):
        for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=cluster):
            for name in page.get("fargateProfileNames", []):
                # absent: deleted since the listing
                with aws_errors(f"describe Fargate profile {name}", absent={"ResourceNotFoundException"}):
                    profiles.append(
                        eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]
                    )
    return profiles


def _public_subnets(subnets: list[str], vpc_id: str) -> set[str]:
    """Subnets whose route table (explicit, else the VPC's main one) routes to an internet gateway."""
    ec2 = client("ec2")
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    explicit: dict[str, dict[str, Any]] = {}
    main_table: dict[str, Any] | None = None
    for table in tables:
        for association in table.get("Associations", []):
            if association.get("Main"):
                main_table = table
            elif association.get("SubnetId"):
                explicit[association["SubnetId"]] = table

    def routes_to_igw(table: dict[str, Any] | None) -> bool:
        return bool(table) and any(
            str(route.get("GatewayId", "")).startswith("igw-")
            for route in table.get("Routes", [])  # type: ignore[union-attr]
        )

    return {subnet for subnet in subnets if routes_to_igw(explicit.get(subnet, main_table))}


def check_subnets(request: ProvisionRequest, cluster: dict[str, Any]) -> list[str]:
    """The subnets a profile for the request would use, checked before anything is created: requested ones exist
    and are in the cluster's VPC, and they (or the cluster's own) are private.

    Raises:
        SubnetNotFound: a requested subnet does not exist, or is in another VPC than the cluster's.
        SubnetNotPrivate: a requested subnet routes to an internet gateway; or the cluster has no private subnet.
    """
    if request.subnets:
        vpc_id = str(cluster["resourcesVpcConfig"]["vpcId"])  # always there (EKS API reference, VpcConfigResponse)

        def not_found(message: str) -> SubnetNotFound:
            return SubnetNotFound(f"subnets: {message}; give subnets of the cluster's VPC")

        with aws_errors(
            f"describe subnets {', '.join(request.subnets)}", raises={"InvalidSubnetID.NotFound": not_found}
        ):
            found = client("ec2").describe_subnets(SubnetIds=list(request.subnets))["Subnets"]
        elsewhere = sorted(subnet["SubnetId"] for subnet in found if subnet.get("VpcId") != vpc_id)
        if elsewhere:
            raise SubnetNotFound(
                f"subnets {', '.join(elsewhere)} are not in VPC {vpc_id} of cluster {request.cluster}; Fargate "
                "profiles take subnets of the cluster's VPC"
            )
    return _choose_subnets(request, cluster)


def check_kubernetes_version(cluster: dict[str, Any]) -> str:
    """The cluster's Kubernetes version, when the app's objects can run on it.

    Raises:
        ClusterVersionUnsupported: older than MIN_KUBERNETES_VERSION.
    """
    version = str(cluster.get("version", ""))
    parts = version.split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:2]):
        raise ClusterVersionUnsupported(f"EKS cluster {cluster.get('name')}: Kubernetes version {version!r} unknown")
    if (int(parts[0]), int(parts[1])) < MIN_KUBERNETES_VERSION:
        minimum = ".".join(map(str, MIN_KUBERNETES_VERSION))
        raise ClusterVersionUnsupported(
            f"EKS cluster {cluster.get('name')} runs Kubernetes {version}; the app's objects need {minimum} or "
            "later (networking.k8s.io/v1 Ingress with pathType, server-side apply): upgrade the cluster"
        )
    return version


def _choose_subnets(request: ProvisionRequest, cluster: dict[str, Any]) -> list[str]:
    vpc = cluster.get("resourcesVpcConfig", {})
    with aws_errors(f"read the route tables of cluster {request.cluster}'s VPC"):
        vpc_id = str(vpc["vpcId"])  # DescribeCluster always carries it (EKS API reference, VpcConfigResponse)
        if request.subnets:
            public = _public_subnets(request.subnets, vpc_id)
            if public:
                raise SubnetNotPrivate(
                    f"subnets {', '.join(sorted(public))} route to an internet gateway; Fargate pods need private "
                    "subnets (route through a NAT gateway or VPC endpoints instead)"
                )
            return list(request.subnets)
        candidates = list(vpc.get("subnetIds", []))
        private = sorted(set(candidates) - _public_subnets(candidates, vpc_id))
    if not private:
        raise SubnetNotPrivate(
            f"cluster {request.cluster} has no private subnet; pass 'subnets' with private subnets of its VPC"
        )
    return private


def ensure_fargate_profile(
    settings: Settings, request: ProvisionRequest, role_arn: str, execution_id: str = "", holder: str | None = None
) -> FargateProfile:
    """Reuse a profile that already schedules the app's pods, or create one for its namespace and labels.

    ``holder`` (the app) takes the profile before it is reused or created (fargate_app/holders.py); a reused one is
    read again after the take: a release that deleted it in between leaves it DELETING, and it is made anew.

    Raises:
        ClusterNotFound, ClusterNotActive, SubnetNotPrivate, ProfileCreateFailed: permanent.
        ProfileOperationInProgress: another profile is CREATING/DELETING on the cluster; retry later.
        IamRoleNotYetPropagated: EKS cannot yet see the role's trust policy; retry later.
        SharedResourceReleasing: the release of the profile's last holder is deleting it; retry later.
    """
    cluster = describe_active_cluster(request.cluster)
    subnets = _choose_subnets(request, cluster)
    existing = _list_profiles(request.cluster)
    ours = execution_tag(execution_id) if execution_id else None
    profile = reusable_profile(settings, request, existing, subnets)
    if profile is not None and holder is not None:
        profile = _taken(settings, request.cluster, profile["fargateProfileName"], holder)
    if profile is not None:
        # A retry of this step after its create went through finds the profile it made: still its own.
        created = ours is not None and (profile.get("tags") or {}).get(CREATED_BY_TAG) == ours
        logger.info("reusing Fargate profile", extra={"profile": profile["fargateProfileName"], "own": created})
        return _result(profile, created=created)
    if len(existing) >= MAX_PROFILES_PER_CLUSTER:
        raise _quota_exceeded(settings, request.cluster, len(existing))

    if settings.profile_strategy == "shared":
        name = shared_profile_name(settings, subnets, role_arn)
        selector: dict[str, Any] = {"namespace": "*", "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    else:
        name = profile_name(settings, request)
        selector = {"namespace": request.namespace, **({"labels": request.labels} if request.labels else {})}
    with taken(settings, profile_resource(request.cluster, name), holder):
        return _create_profile(settings, request, name, selector, subnets, role_arn, execution_id)


def _create_profile(
    settings: Settings,
    request: ProvisionRequest,
    name: str,
    selector: dict[str, Any],
    subnets: list[str],
    role_arn: str,
    execution_id: str,
) -> FargateProfile:
    ours = execution_tag(execution_id) if execution_id else None
    # Idempotent across retries of this execution's call; a later execution (say, after a teardown) gets a new token
    # so EKS cannot answer it with the profile the token created before.
    identity = [request.cluster, name, selector, subnets, role_arn, execution_id]
    token = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:64]
    try:
        profile = client("eks").create_fargate_profile(
            fargateProfileName=name,
            clusterName=request.cluster,
            podExecutionRoleArn=role_arn,
            subnets=subnets,
            selectors=[selector],
            clientRequestToken=token,
            tags={
                MANAGED_BY_TAG: MANAGED_BY,
                CREATED_FOR_TAG: f"{request.namespace}.{request.app}",
                **({CREATED_BY_TAG: ours} if ours else {}),
            },
        )["fargateProfile"]
    except ClientError as exc:
        if error_code(exc) == "ResourceInUseException" and "already exists" in error_message(exc):
            return _adopt_existing(settings, request, name)  # a concurrent execution created it first
        raise _create_error(exc, request.cluster, name) from exc
    except BotoCoreError as exc:
        raise translate(exc, f"create Fargate profile {name}") from exc
    logger.info("creating Fargate profile", extra={"profile": name, "cluster": request.cluster})
    return _result(profile, created=True)


def _taken(settings: Settings, cluster: str, name: str, holder: str) -> dict[str, Any]:
    """Take the profile chosen for reuse, then read it again: still usable, or released and ProfileOperationInProgress.

    Raises:
        SharedResourceReleasing: its last holder's release is deleting it.
        ProfileOperationInProgress: it was deleted between the listing and the take; it is made anew on the retry.
    """
    with taken(settings, profile_resource(cluster, name), holder):
        with aws_errors(f"describe Fargate profile {name}", absent={"ResourceNotFoundException"}):
            found = client("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=name)
            if found["fargateProfile"].get("status") in USABLE_STATUSES:
                return found["fargateProfile"]  # type: ignore[no-any-return]
        raise ProfileOperationInProgress(
            f"cluster {cluster}: profile {name} was deleted meanwhile; will create it anew"
        )


def _adopt_existing(settings: Settings, request: ProvisionRequest, name: str) -> FargateProfile:
    """Our profile name is taken: reuse it if it schedules the app, wait if it is going away, else fail.

    Raises:
        ProfileOperationInProgress: it is being deleted; retry later and create it anew.
        ProfileCreateFailed: it failed to create, or it exists with selectors that don't match the app.
    """
    with aws_errors(f"describe Fargate profile {name}"):
        profile = client("eks").describe_fargate_profile(clusterName=request.cluster, fargateProfileName=name)
    profile = profile["fargateProfile"]
    status = profile.get("status")
    if status in USABLE_STATUSES and profile_matches(profile, request.namespace, managed_pod_labels(request)):
        return _result(profile, created=False)
    if status == "DELETING":
        raise ProfileOperationInProgress(f"cluster {request.cluster}: profile {name} is DELETING; will create it anew")
    raise ProfileCreateFailed(
        f"cluster {request.cluster}: Fargate profile {name} exists ({status}) and does not schedule app "
        f"{request.app} in namespace {request.namespace}: delete it or choose other labels"
    )


def _create_error(exc: ClientError, cluster: str, name: str) -> Exception:
    code, message = error_code(exc), error_message(exc)
    if code == "ResourceInUseException" and "currently has Fargate profile" in message:
        return ProfileOperationInProgress(f"cluster {cluster}: {message}")
    if code == "InvalidParameterException" and "Misconfigured PodExecutionRole Trust Policy" in message:
        return IamRoleNotYetPropagated(f"EKS does not yet see the trust policy of the pod execution role: {message}")
    if code == "ResourceLimitExceededException":
        # Profiles created meanwhile (by us or anyone) took the last places: permanent until some are deleted.
        return ProfileQuotaExceeded(
            f"cluster {cluster}: EKS refused Fargate profile {name}: {message}; delete profiles you no longer need"
        )
    if code == "InvalidParameterException" and "not a private subnet" in message:
        return SubnetNotPrivate(f"cluster {cluster}: {message}")
    if code == "InvalidParameterException":
        return InvalidRequest.of(f"EKS refused Fargate profile {name} for cluster {cluster}", message)
    return translate(exc, f"create Fargate profile {name} in cluster {cluster}")


def _result(profile: dict[str, Any], *, created: bool) -> FargateProfile:
    active = profile["status"] == "ACTIVE"
    return FargateProfile(
        cluster=profile["clusterName"],
        name=profile["fargateProfileName"],
        status=profile["status"],
        created=created,
        selectors=[
            ProfileSelector(namespace=s["namespace"], labels=s.get("labels") or {}) for s in profile["selectors"]
        ],
        subnets=sorted(profile.get("subnets", [])),
        waiting_since=None if active else datetime.now(UTC),
    )


def check_fargate_profile(settings: Settings, profile: FargateProfile, expect: str = "ACTIVE") -> FargateProfile:
    """One poll of a profile being created (``expect`` ACTIVE) or deleted (``expect`` DELETED: gone is DELETED).

    "Not yet" is an error the state machine retries (ProfileNotYetActive/ProfileNotYetDeleted): its Retry is the
    poll, so each check costs one state transition instead of a Wait, a Task and a Choice.

    Raises:
        ProfileNotYetActive, ProfileNotYetDeleted: still CREATING or DELETING; the state machine checks again later.
        ProfileCreateFailed: CREATE_FAILED/DELETE_FAILED (its health issues in the message), or it vanished or began
            DELETING while the workflow waited for ACTIVE.
        PollTimeout: still not there PROFILE_WAIT_TIMEOUT_SECONDS after the workflow began to wait.
    """
    cluster, name = profile.cluster, profile.name
    status, found = "DELETED", {}
    with aws_errors(f"describe Fargate profile {name}", absent={"ResourceNotFoundException"}) as gone:
        found = client("eks").describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]
        # EKS's model makes no output member required: without a status this poll learned nothing; poll again.
        status = str(found.get("status") or "UNKNOWN")
    if gone.code and expect == "ACTIVE":
        raise ProfileCreateFailed(f"Fargate profile {name} of cluster {cluster} disappeared while CREATING")
    if status in ("CREATE_FAILED", "DELETE_FAILED"):
        issues = "; ".join(
            f"{issue.get('code')}: {issue.get('message')}" for issue in found.get("health", {}).get("issues", [])
        )
        raise ProfileCreateFailed(f"Fargate profile {name} of cluster {cluster} is {status}: {issues or 'no detail'}")
    if status == expect:
        return profile.model_copy(update={"status": status, "waiting_since": None})
    if expect == "ACTIVE" and status == "DELETING":
        raise ProfileCreateFailed(
            f"Fargate profile {name} of cluster {cluster} is DELETING (another app's teardown removed it): "
            "provision again to create a profile for the app"
        )
    now = datetime.now(UTC)  # once: a poll that starts the clock has waited 0 s, not a negative instant
    waited = (now - (profile.waiting_since or now)).total_seconds()
    if waited >= settings.profile_wait_timeout_seconds:
        raise PollTimeout(
            f"Fargate profile {name} of cluster {cluster} still {status} after {waited:.0f} s "
            f"(PROFILE_WAIT_TIMEOUT_SECONDS={settings.profile_wait_timeout_seconds})"
        )
    not_yet = ProfileNotYetActive if expect == "ACTIVE" else ProfileNotYetDeleted
    raise not_yet(f"Fargate profile {name} of cluster {cluster} is {status} ({waited:.0f} s so far)")


def delete_fargate_profile(cluster: str, name: str) -> bool:
    """Start deleting a profile. False when it is already gone.

    Raises:
        ProfileOperationInProgress: another profile operation is under way on the cluster; retry later.
    """

    def in_progress(message: str) -> ProfileOperationInProgress:
        return ProfileOperationInProgress(f"cluster {cluster}: {message}")

    with aws_errors(
        f"delete Fargate profile {name}",
        absent={"ResourceNotFoundException"},
        raises={"ResourceInUseException": in_progress},
    ) as gone:
        client("eks").delete_fargate_profile(clusterName=cluster, fargateProfileName=name)
    return not gone.code
