"""What IAM authorizes for one AWS request: the action, the resource ARN it is evaluated on, the request context,
and the further authorizations the service makes on the caller's behalf (the role ``CreateFargateProfile`` passes).

The resource types an action is authorized on, and their ARN formats, come from the Service Authorization
Reference (``iam_reference``): an action with no resource type is authorized on ``*``; for the others the ARN is
built from the request's parameters below and checked against the reference's format, so a wrong binding here is
an error, never a silent allow. Requests of actions the sandbox has no binding for fail loudly (``UnboundRequest``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from fargate_sandbox import iam_reference
from fargate_sandbox.aws_protocol import AwsRequest, service_model

ContextValue = str | list[str]
# Service-linked roles the sandbox's services create on a caller's behalf (EKS user guide, "Using roles for Amazon
# EKS Fargate profiles"; ECR user guide, "Amazon ECR service-linked role for pull through cache").
SERVICE_LINKED_ROLES = {
    "eks-fargate.amazonaws.com": "AWSServiceRoleForAmazonEKSForFargate",
    "pullthroughcache.ecr.amazonaws.com": "AWSServiceRoleForECRPullThroughCache",
}


class UnboundRequest(LookupError):
    """The sandbox cannot tell which resource an action is authorized on: a binding is missing here."""


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    why: str = ""  # empty for the request's own action; else what the service does on the caller's behalf


@dataclass
class Lookups:
    """What only the account's state can tell (an ARN's generated part), from moto."""

    role_path: Callable[[str], str | None]  # role name → its path, or None when it does not exist
    profile_arn: Callable[[str, str], str | None]  # (cluster, profile) → its ARN
    secret_arn: Callable[[str], str | None]  # secret id (name or ARN) → its ARN


def parameters(request: AwsRequest) -> dict[str, Any]:
    """The request's parameters as its protocol carries them (query form, JSON body, REST path and body)."""
    protocol = service_model(request.service).metadata["protocol"] if request.service else "json"
    if protocol in ("query", "ec2"):
        form = parse_qs(request.body.decode("utf-8", errors="replace")) if request.body else {}
        merged = {**request.query, **form}
        return {key: values[0] if len(values) == 1 else values for key, values in merged.items()}
    body = request.json_body() if request.body else {}
    path = {key: unquote(value) for key, value in request.path_params.items()}
    return {**body, **path}


def _tags_from_query(params: dict[str, Any]) -> dict[str, str]:
    tags = {}
    for key, value in params.items():
        match = re.fullmatch(r"Tags\.member\.(\d+)\.Key", key)
        if match:
            tags[str(value)] = str(params.get(f"Tags.member.{match.group(1)}.Value", ""))
    return tags


def _tag_context(tags: dict[str, str]) -> dict[str, ContextValue]:
    if not tags:
        return {}
    return {**{f"aws:RequestTag/{key}": value for key, value in tags.items()}, "aws:TagKeys": sorted(tags)}


class RequestResources:
    def __init__(self, account: str, region: str, lookups: Lookups, partition: str = "aws") -> None:
        self.account = account
        self.region = region
        self.partition = partition
        self.lookups = lookups

    def arn(self, service: str, resource: str, *, region: str | None = None) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region is None else region}:{self.account}:{resource}"

    def role_arn(self, name: str, path: str | None = None) -> str:
        found = self.lookups.role_path(name)
        return f"arn:{self.partition}:iam::{self.account}:role{found or path or '/'}{name}"

    def service_linked_role_arn(self, service: str) -> str:
        name = SERVICE_LINKED_ROLES.get(service, f"AWSServiceRoleFor{service.split('.')[0]}")
        return f"arn:{self.partition}:iam::{self.account}:role/aws-service-role/{service}/{name}"

    # --- the request → its checks -----------------------------------------------------------------------------------
    def checks(self, request: AwsRequest) -> list[Check]:
        """The request's own authorization first, then those the service makes on the caller's behalf.

        Raises:
            UnboundRequest: the action takes a resource the sandbox does not know how to name.
        """
        assert request.service is not None and request.operation is not None
        action = iam_reference.iam_action(request.service, request.operation)
        reference = iam_reference.action(action)
        if reference is None:
            raise UnboundRequest(f"{action} is not an action of the Service Authorization Reference")
        params = parameters(request)
        binder = getattr(self, f"_{request.service}_{request.operation}", None) or getattr(
            self, f"_{request.service}", None
        )
        if not reference.takes_resource:
            own = Check(reference.action, "*", binder(request.operation, params).context if binder else {})
        elif binder is None:
            raise UnboundRequest(f"the sandbox has no resource binding for {reference.action}")
        else:
            own = binder(request.operation, params)
            own = Check(reference.action, own.resource, own.context)
            if not any(resource.matches(own.resource) for resource in reference.resource_types):
                raise UnboundRequest(f"{reference.action}: {own.resource} has none of the reference's ARN formats")
        return [own, *self._on_behalf(request.service, request.operation, params)]

    def _on_behalf(self, service: str, operation: str, params: dict[str, Any]) -> list[Check]:
        if (service, operation) == ("eks", "CreateFargateProfile") and params.get("podExecutionRoleArn"):
            # The caller passes the pod execution role to EKS (IAM user guide, "Granting a user permissions to pass
            # a role to an AWS service"). EKS documents no iam:PassedToService value for it, so none is given.
            return [Check("iam:PassRole", str(params["podExecutionRoleArn"]), {}, "the pod execution role")]
        return []

    # --- bindings: (operation, parameters) → the request's own check (its resource and context) -----------------------
    def _iam(self, operation: str, params: dict[str, Any]) -> Check:
        if operation == "CreateServiceLinkedRole":
            service = str(params.get("AWSServiceName", ""))
            return Check("", self.service_linked_role_arn(service), {"iam:AWSServiceName": service})
        name = params.get("RoleName")
        if name is None:
            raise UnboundRequest(f"iam:{operation}: no RoleName")
        context: dict[str, ContextValue] = {}
        if operation in ("AttachRolePolicy", "DetachRolePolicy"):
            context["iam:PolicyARN"] = str(params.get("PolicyArn", ""))
        if operation in ("CreateRole", "TagRole"):
            context.update(_tag_context(_tags_from_query(params)))
        return Check("", self.role_arn(str(name), params.get("Path")), context)

    def _eks(self, operation: str, params: dict[str, Any]) -> Check:
        if operation == "TagResource" or operation == "UntagResource":
            return Check("", str(params["resourceArn"]))
        cluster = str(params.get("name") or params.get("clusterName") or "")
        profile = params.get("fargateProfileName")
        if operation in ("DescribeFargateProfile", "DeleteFargateProfile") and profile:
            known = self.lookups.profile_arn(cluster, str(profile))
            # A profile that does not exist is still authorized first: on its name, its generated id unknown.
            resource = known or self.arn(
                "eks", f"fargateprofile/{cluster}/{profile}/00000000-0000-0000-0000-000000000000"
            )
            return Check("", resource)
        context = _tag_context({str(k): str(v) for k, v in (params.get("tags") or {}).items()})
        return Check("", self.arn("eks", f"cluster/{cluster}"), context)

    def _ecr(self, operation: str, params: dict[str, Any]) -> Check:
        repository = params.get("repositoryName")
        return Check("", self.arn("ecr", f"repository/{repository}") if repository else "*")

    def _secretsmanager(self, operation: str, params: dict[str, Any]) -> Check:
        secret = str(params.get("SecretId", ""))
        known = self.lookups.secret_arn(secret)
        return Check(
            "", known or (secret if secret.startswith("arn:") else self.arn("secretsmanager", f"secret:{secret}"))
        )

    def _ssm(self, operation: str, params: dict[str, Any]) -> Check:
        name = str(params.get("Name", ""))
        return Check("", self.arn("ssm", f"parameter/{name.lstrip('/')}"))

    def _stepfunctions(self, operation: str, params: dict[str, Any]) -> Check:
        for key in ("executionArn", "stateMachineArn", "mapRunArn"):
            if params.get(key):
                return Check("", str(params[key]))
        raise UnboundRequest(f"states:{operation}: no ARN in the request")

    def _lambda(self, operation: str, params: dict[str, Any]) -> Check:
        name = str(params.get("FunctionName", ""))
        if name.startswith("arn:"):
            return Check("", ":".join(name.split(":")[:7]))
        return Check("", self.arn("lambda", f"function:{name.split(':')[0]}"))

    def _sts(self, operation: str, params: dict[str, Any]) -> Check:
        return Check("", str(params.get("RoleArn", "*")))

    def _dynamodb(self, operation: str, params: dict[str, Any]) -> Check:
        table = params.get("TableName")
        if not table:
            raise UnboundRequest(f"dynamodb:{operation}: no TableName")
        index = params.get("IndexName")
        return Check("", self.arn("dynamodb", f"table/{table}" + (f"/index/{index}" if index else "")))
