"""The IAM roles the template deploys, exactly as SAM generates them, created in the sandbox's account.

``sam deploy`` turns every ``AWS::Serverless::Function`` and ``StateMachine`` into a role of its own: the
``Policies`` of the resource plus what SAM adds (AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess for tracing,
AWSLambdaVPCAccessExecutionRole with a VpcConfig). The sandbox runs SAM's own translator (``samtranslator``, the
library sam-cli and CloudFormation's transform use) on the template with the sandbox's parameter values, resolves
the intrinsics for the sandbox's account, and creates those roles through IAM's API: what a function may do in the
sandbox is what it may do in AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fargate_sandbox.template_model import Deployment, _Resolver, read_template


@dataclass(frozen=True)
class RoleSpec:
    logical_id: str
    name: str
    trust_policy: Mapping[str, Any]
    managed_policy_arns: tuple[str, ...]
    inline_policies: Mapping[str, Mapping[str, Any]]  # policy name → document


@dataclass(frozen=True)
class StackRoles:
    roles: Mapping[str, RoleSpec]  # role logical id → role
    function_roles: Mapping[str, str]  # function logical id → role logical id
    state_machine_roles: Mapping[str, str]  # state machine logical id → role logical id
    access_entries: tuple[Mapping[str, Any], ...]  # AWS::EKS::AccessEntry properties, resolved (condition met)
    translated: Mapping[str, Any]  # the whole translated template (CloudFormation, intrinsics unresolved)


def translate(
    template_path: Path, *, account_id: str, region: str, partition: str, parameter_values: Mapping[str, str]
) -> dict[str, Any]:
    """The template as CloudFormation receives it after SAM's transform (artifact URIs stand in for local paths,
    as `sam package` would leave them).

    SAM's transform takes about a second, on every sandbox start; its result depends only on the template's bytes,
    the values and the translator's version, so it is kept on disk under that key (``translation_cache``) and read
    back while none of them changes."""
    from samtranslator import __version__ as translator_version

    inputs = json.dumps(
        [translator_version, account_id, region, partition, sorted(parameter_values.items())], sort_keys=True
    ).encode()
    key = hashlib.sha256(inputs + b"\0" + Path(template_path).read_bytes()).hexdigest()
    cached = translation_cache() / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(cached.read_text()))
    translated = _translate(template_path, account_id, region, partition, parameter_values)
    with contextlib.suppress(OSError):  # a read-only home only costs the second
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(translated))
        partial.replace(cached)  # atomic: a concurrent start reads a whole file or none
    return translated


def translation_cache() -> Path:
    """``$FARGATE_APP_CACHE`` or ``$XDG_CACHE_HOME/fargate-app`` (``~/.cache``), then ``sam-translations``."""
    base = os.environ.get("FARGATE_APP_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fargate-app"
    )
    return Path(base) / "sam-translations"


def _translate(
    template_path: Path, account_id: str, region: str, partition: str, parameter_values: Mapping[str, str]
) -> dict[str, Any]:
    import boto3
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document: dict[str, Any] = read_template(template_path)
    for logical_id, resource in (document.get("Resources") or {}).items():
        properties = resource.setdefault("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = f"s3://sandbox-artifacts/{logical_id}.zip"
        elif kind == "AWS::Serverless::LayerVersion" and isinstance(properties.get("ContentUri"), str):
            properties["ContentUri"] = f"s3://sandbox-artifacts/{logical_id}.zip"
        elif kind == "AWS::Serverless::StateMachine" and isinstance(properties.get("DefinitionUri"), str):
            properties["DefinitionUri"] = f"s3://sandbox-artifacts/{logical_id}.json"

    values = {
        **parameter_values,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": partition,
    }
    # A session only for its region name: the translator makes no call (managed policy ARNs from SAM's bundled map).
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return dict(
        translator.translate(
            json.loads(json.dumps(document)),
            parameter_values=values,
            get_managed_policy_map=lambda: dict(get_bundled_managed_policy_map(partition)),
        )
    )


def stack_roles(template_path: Path, deployment: Deployment) -> StackRoles:
    template_path = Path(template_path).resolve()
    translated = translate(
        template_path,
        account_id=deployment.account_id,
        region=deployment.region,
        partition=deployment.partition,
        parameter_values=dict(deployment.parameter_overrides),
    )
    resolver = _Resolver(translated, deployment)
    resources = translated.get("Resources") or {}
    roles: dict[str, RoleSpec] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        properties = resolver.resolve(resource.get("Properties") or {})
        roles[logical_id] = RoleSpec(
            logical_id=logical_id,
            name=str(properties.get("RoleName", logical_id)),
            trust_policy=properties["AssumeRolePolicyDocument"],
            managed_policy_arns=tuple(str(arn) for arn in properties.get("ManagedPolicyArns") or []),
            inline_policies={
                str(policy["PolicyName"]): policy["PolicyDocument"] for policy in properties.get("Policies") or []
            },
        )

    def role_of(kind: str) -> dict[str, str]:
        found = {}
        for logical_id, resource in resources.items():
            if resource.get("Type") != kind:
                continue
            properties = resource.get("Properties") or {}
            role = properties.get("Role") or properties.get("RoleArn") or {}
            getatt = role.get("Fn::GetAtt") if isinstance(role, dict) else None
            if getatt and getatt[0] in roles:
                found[logical_id] = str(getatt[0])
        return found

    entries = tuple(
        resolver.resolve(resource.get("Properties") or {})
        for resource in resources.values()
        if resource.get("Type") == "AWS::EKS::AccessEntry"
        and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    )
    return StackRoles(
        roles=roles,
        function_roles=role_of("AWS::Lambda::Function"),
        state_machine_roles=role_of("AWS::StepFunctions::StateMachine"),
        access_entries=entries,
        translated=translated,
    )


def deploy(iam: Any, roles: Mapping[str, RoleSpec]) -> None:
    """Create or update each role through IAM's API, as CloudFormation would: trust, inline, attached policies."""
    for role in roles.values():
        trust = json.dumps(role.trust_policy)
        existing = False
        try:
            iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=trust)
        except iam.exceptions.EntityAlreadyExistsException:
            iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust)
            existing = True
        # A role just created has no policies yet: only an update has some to compare (two calls a role saved).
        for name in iam.list_role_policies(RoleName=role.name)["PolicyNames"] if existing else ():
            if name not in role.inline_policies:
                iam.delete_role_policy(RoleName=role.name, PolicyName=name)
        for name, document in role.inline_policies.items():
            # SAM's policy templates leave out Version (IAM then reads 2008-10-17); moto insists on 2012-10-17, and
            # the two versions differ only in policy variables, which SAM's templates do not use.
            versioned = {"Version": "2012-10-17", **document}
            iam.put_role_policy(RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(versioned))
        attached = (
            {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]}
            if existing
            else set()
        )
        for arn in attached - set(role.managed_policy_arns):
            iam.detach_role_policy(RoleName=role.name, PolicyArn=arn)
        for arn in set(role.managed_policy_arns) - attached:
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):  # a managed policy moto does not ship
                iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
