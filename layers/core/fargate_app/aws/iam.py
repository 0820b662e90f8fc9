"""Step EnsurePodExecutionRole: the IAM role Fargate assumes to pull images and write logs for the app's pods.

The walkthrough's trust policy and managed policy, plus the two actions a pull through the cache needs on the first
pull of a repository (ECR user guide, "IAM permissions required to sync an upstream registry with an Amazon ECR
private registry"): ``ecr:CreateRepository`` and ``ecr:BatchImportUpstreamImage`` on ``<prefix>/*``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.tags import CLUSTER_TAG, CREATED_BY_TAG, MANAGED_BY_TAG, execution_tag
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.errors import IamRoleNotYetPropagated, RoleConflict
from fargate_app.holders import role_resource, taken
from fargate_app.models import PodExecutionRole
from fargate_app.observability import logger

FARGATE_POD_SERVICE = "eks-fargate-pods.amazonaws.com"
MANAGED_POLICY = "AmazonEKSFargatePodExecutionRolePolicy"

_POLICY_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def role_name(settings: Settings, cluster: str) -> str:
    """One role per cluster (the trust policy names the cluster); IAM names are at most 64 characters."""
    name = f"{settings.pod_execution_role_prefix}-{cluster}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:8]
    return f"{name[:55]}-{digest}"


def _policy(statement: dict[str, Any]) -> dict[str, Any]:
    """An IAM policy document of one Allow statement (the current policy language version)."""
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}


def trust_policy(settings: Settings, cluster: str) -> dict[str, Any]:
    source = f"arn:{settings.partition}:eks:{settings.region}:{settings.account_id}:fargateprofile/{cluster}/*"
    return _policy(
        {
            "Condition": {"ArnLike": {"aws:SourceArn": source}},
            "Principal": {"Service": FARGATE_POD_SERVICE},
            "Action": "sts:AssumeRole",
        }
    )


def pull_through_policy_name(prefix: str) -> str:
    return "pull-through-cache-" + _POLICY_NAME_UNSAFE.sub("-", prefix)


def pull_through_policy(settings: Settings, prefix: str) -> dict[str, Any]:
    repositories = f"arn:{settings.partition}:ecr:{settings.region}:{settings.account_id}:repository/{prefix}/*"
    return _policy(
        {
            "Sid": "PullThroughCacheFirstPull",
            "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
            "Resource": repositories,
        }
    )


def _canonical(policy: Any) -> Any:
    """Compare policies by meaning, not formatting: single-element lists equal their element, order is ignored."""
    if isinstance(policy, dict):
        return {key: _canonical(value) for key, value in policy.items()}
    if isinstance(policy, list):
        items = [_canonical(item) for item in policy]
        return items[0] if len(items) == 1 else sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return policy


def ensure_pod_execution_role(
    settings: Settings, cluster: str, cache_prefix: str, execution_arn: str = "", holder: str | None = None
) -> PodExecutionRole:
    """Create or reuse the cluster's pod execution role and grant it the cache prefix.

    ``created`` is true when this execution created the role, on a retry of the step too (the role's created-by tag
    names the execution). ``holder`` (the app) takes the role before it is read (fargate_app/holders.py): a release
    cannot delete it after that.

    Raises:
        SharedResourceReleasing: the release of its last holder is deleting it; retried.
        RoleConflict: a role of that name exists with another trust policy and is not tagged as ours.
        IamRoleNotYetPropagated: IAM does not yet see the role it just created.
        AwsThrottled: IAM throttled us past the SDK's retries.
    """
    name = role_name(settings, cluster)
    with taken(settings, role_resource(name), holder):
        return _ensure_role(settings, name, cluster, cache_prefix, execution_arn)


def _ensure_role(
    settings: Settings, name: str, cluster: str, cache_prefix: str, execution_arn: str
) -> PodExecutionRole:
    iam = client("iam")
    wanted_trust = trust_policy(settings, cluster)
    created = False
    role: dict[str, Any] | None = None
    with aws_errors(f"read IAM role {name}", absent={"NoSuchEntity"}) as missing:
        role = iam.get_role(RoleName=name)["Role"]
    if missing.code:
        role = _create_role(settings, name, cluster, wanted_trust, execution_arn)
        created = role is not None
    if role is None:  # another execution created it between our get and our create
        with aws_errors(f"read IAM role {name}"):
            role = iam.get_role(RoleName=name)["Role"]

    if not created:
        tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags") or []}
        ours = execution_tag(execution_arn) if execution_arn else None
        created = ours is not None and tags.get(CREATED_BY_TAG) == ours  # our own create, retried
        _reconcile_trust(settings, role, wanted_trust)
    _grant(settings, name, cache_prefix, just_created=created)
    logger.info("pod execution role ready", extra={"role_name": name, "role_created": created})
    return PodExecutionRole(arn=role["Arn"], name=name, created=created)


def _create_role(
    settings: Settings, name: str, cluster: str, trust: dict[str, Any], execution_arn: str
) -> dict[str, Any] | None:
    ours = [{"Key": CREATED_BY_TAG, "Value": execution_tag(execution_arn)}]
    with aws_errors(f"create IAM role {name}", absent={"EntityAlreadyExists"}):
        return client("iam").create_role(  # type: ignore[no-any-return]
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"EKS Fargate pod execution role for cluster {cluster}, managed by {MANAGED_BY}",
            Tags=[
                {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY},
                {"Key": CLUSTER_TAG, "Value": cluster},
                *(ours if execution_arn else []),
            ],
        )["Role"]
    return None


def _reconcile_trust(settings: Settings, role: dict[str, Any], wanted: dict[str, Any]) -> None:
    current = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(current, str):  # IAM returns it URL-encoded on the wire; boto3 usually decodes it
        from urllib.parse import unquote

        current = json.loads(unquote(current))
    if _canonical(current) == _canonical(wanted):
        return
    with aws_errors(f"read the tags of IAM role {role['RoleName']}"):
        listed = client("iam").list_role_tags(RoleName=role["RoleName"])["Tags"]
    tags = {tag["Key"]: tag["Value"] for tag in listed}
    if tags.get(MANAGED_BY_TAG) != MANAGED_BY:
        raise RoleConflict(
            f"IAM role {role['RoleName']} exists with a different trust policy and is not managed by "
            f"{MANAGED_BY}: delete or rename it, or set POD_EXECUTION_ROLE_PREFIX to use another name"
        )
    with aws_errors(f"update the trust policy of IAM role {role['RoleName']}"):
        client("iam").update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=json.dumps(wanted))


def grant_cache_prefix(settings: Settings, name: str, cache_prefix: str) -> None:
    """Let the role's pods pull through ``cache_prefix`` (idempotent: put_role_policy replaces)."""
    with aws_errors(f"grant cache prefix {cache_prefix} to IAM role {name}"):
        client("iam").put_role_policy(
            RoleName=name,
            PolicyName=pull_through_policy_name(cache_prefix),
            PolicyDocument=json.dumps(pull_through_policy(settings, cache_prefix)),
        )


def _grant(settings: Settings, name: str, cache_prefix: str, *, just_created: bool) -> None:
    iam = client("iam")
    managed_arn = f"arn:{settings.partition}:iam::aws:policy/{MANAGED_POLICY}"

    def not_yet_visible(_: str) -> IamRoleNotYetPropagated:
        return IamRoleNotYetPropagated(f"IAM role {name} was just created and is not yet visible; retrying")

    with aws_errors(
        f"grant policies to IAM role {name}", raises={"NoSuchEntity": not_yet_visible} if just_created else None
    ):
        iam.attach_role_policy(RoleName=name, PolicyArn=managed_arn)
        iam.put_role_policy(
            RoleName=name,
            PolicyName=pull_through_policy_name(cache_prefix),
            PolicyDocument=json.dumps(pull_through_policy(settings, cache_prefix)),
        )


def delete_pod_execution_role(name: str) -> bool:
    """Compensation: remove a role this execution created (its policies first). False when already gone."""
    iam = client("iam")
    with aws_errors(f"delete IAM role {name}", absent={"NoSuchEntity"}) as gone:
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        iam.delete_role(RoleName=name)
    return not gone.code
