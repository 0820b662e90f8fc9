"""The sandbox's AWS front authorizes each call like IAM: a role session's call is evaluated against the
role's identity policies, on the resource AWS authorizes the action on, with the dependent actions and the
service-linked-role checks the services make, and a refusal is the service's own AccessDenied error.

Each case is one that a template grant got wrong before (the issue's list): it fails on the grant as it was and
passes on the grant the template has now.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sandbox_test_support import PROFILE_SECONDS

from fargate_sandbox.eks_rules import ManualClock
from fargate_sandbox.iam_enforcement import LOG_DELIVERY_ACTIONS
from fargate_sandbox.iam_requests import SERVICE_LINKED_ROLES
from fargate_sandbox.sandbox import Sandbox

ACCOUNT = "111122223333"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
EKS_FARGATE_SLR = SERVICE_LINKED_ROLES["eks-fargate.amazonaws.com"]
ECR_CACHE_SLR = SERVICE_LINKED_ROLES["pullthroughcache.ecr.amazonaws.com"]


class RoleSession:
    """A role with the given statements, and boto3 clients of a session of it (what a Lambda function gets)."""

    def __init__(self, sandbox: Sandbox, statements: list[dict[str, Any]]) -> None:
        self.sandbox = sandbox
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        iam = sandbox.boto3_client("iam")
        iam.create_role(RoleName=self.name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
        if statements:
            document = {"Version": "2012-10-17", "Statement": statements}
            iam.put_role_policy(RoleName=self.name, PolicyName="grants", PolicyDocument=json.dumps(document))
        issued = sandbox.boto3_client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.name}", RoleSessionName="fn"
        )["Credentials"]
        self.session = boto3.session.Session(
            aws_access_key_id=issued["AccessKeyId"],
            aws_secret_access_key=issued["SecretAccessKey"],
            aws_session_token=issued["SessionToken"],
            region_name=sandbox.region,
        )
        self.arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{self.name}/fn"

    def client(self, service: str) -> Any:
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        return self.session.client(service, endpoint_url=self.sandbox.endpoint_url, config=config)


def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response)


def allow(action: str | list[str], resource: str | list[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


@pytest.fixture
def cluster_arn(cluster: str) -> str:
    return f"arn:aws:eks:us-west-2:{ACCOUNT}:cluster/{cluster}"


@pytest.fixture
def pod_role(sandbox: Sandbox) -> str:
    name = f"FargateAppPodExecution-{uuid.uuid4().hex[:6]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "eks-fargate-pods.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    sandbox.boto3_client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


@pytest.fixture
def fresh_account(sandbox: Sandbox) -> Iterator[None]:
    """No service-linked role yet: the account never had a Fargate profile or a pull-through-cache rule."""
    iam = sandbox.moto_client("iam")
    for name in (EKS_FARGATE_SLR, ECR_CACHE_SLR):
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role(RoleName=name)
    sandbox.iam.forget_policies()
    yield


def create_profile(session: RoleSession, cluster: str, pod_role: str) -> dict[str, Any]:
    private = session.sandbox.seeds.network.private_subnets
    return dict(
        session.client("eks").create_fargate_profile(
            clusterName=cluster,
            fargateProfileName=f"p-{uuid.uuid4().hex[:6]}",
            podExecutionRoleArn=pod_role,
            subnets=private,
            selectors=[{"namespace": "team"}],
        )
    )


def test_create_fargate_profile_is_authorized_on_the_cluster_not_on_a_profile(
    sandbox: Sandbox, cluster: str, cluster_arn: str, pod_role: str
) -> None:
    # The grant as the template had it: on fargateprofile/*/*/*
    wrong = RoleSession(
        sandbox, [allow("eks:CreateFargateProfile", f"arn:aws:eks:us-west-2:{ACCOUNT}:fargateprofile/*/*/*")]
    )
    answer = refused(create_profile, session=wrong, cluster=cluster, pod_role=pod_role)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert answer["Error"]["Message"] == (
        f"User: {wrong.arn} is not authorized to perform: eks:CreateFargateProfile on resource: {cluster_arn} "
        "because no identity-based policy allows the eks:CreateFargateProfile action"
    )


def test_passing_the_pod_role_is_checked_without_a_passed_to_service_value(
    sandbox: Sandbox, cluster: str, cluster_arn: str, pod_role: str
) -> None:
    # EKS does not send iam:PassedToService for CreateFargateProfile: a grant conditioned on it never matches
    conditioned = RoleSession(
        sandbox,
        [
            allow("eks:CreateFargateProfile", cluster_arn),
            allow("iam:PassRole", pod_role, StringEquals={"iam:PassedToService": "eks-fargate-pods.amazonaws.com"}),
        ],
    )
    answer = refused(create_profile, session=conditioned, cluster=cluster, pod_role=pod_role)
    assert answer["Error"]["Message"].startswith(
        f"User: {conditioned.arn} is not authorized to perform: iam:PassRole on resource: {pod_role}"
    )


def test_the_first_profile_of_an_account_needs_the_service_linked_role_grant_and_later_ones_get_role(
    sandbox: Sandbox,
    sandbox_clock: ManualClock,
    cluster: str,
    cluster_arn: str,
    pod_role: str,
    fresh_account: None,
) -> None:
    grants = [allow("eks:CreateFargateProfile", cluster_arn), allow("iam:PassRole", pod_role)]
    slr_arn = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/eks-fargate.amazonaws.com/{EKS_FARGATE_SLR}"
    # Without iam:CreateServiceLinkedRole, the account's first profile is refused, naming the role EKS would create
    answer = refused(create_profile, session=RoleSession(sandbox, grants), cluster=cluster, pod_role=pod_role)
    assert f"iam:CreateServiceLinkedRole on resource: {slr_arn}" in answer["Error"]["Message"]
    # With it (for that service only), EKS creates the role with the profile
    creator = RoleSession(
        sandbox,
        [
            *grants,
            allow(
                "iam:CreateServiceLinkedRole", slr_arn, StringEquals={"iam:AWSServiceName": "eks-fargate.amazonaws.com"}
            ),
        ],
    )
    create_profile(creator, cluster, pod_role)
    sandbox_clock.advance(PROFILE_SECONDS)  # one profile CREATING at a time per cluster
    assert sandbox.moto_client("iam").get_role(RoleName=EKS_FARGATE_SLR)["Role"]["Path"] == (
        "/aws-service-role/eks-fargate.amazonaws.com/"
    )
    # Once it exists, EKS checks it with iam:GetRole: without that grant the call fails as EKS words it
    answer = refused(create_profile, session=RoleSession(sandbox, grants), cluster=cluster, pod_role=pod_role)
    assert answer["Error"]["Code"] == "InvalidRequestException"
    assert answer["Error"]["Message"] == (
        f"Failed to validate if SLR: {EKS_FARGATE_SLR} already exists due to missing permissions for 'iam:GetRole'"
    )
    sandbox_clock.advance(PROFILE_SECONDS)
    create_profile(RoleSession(sandbox, [*grants, allow("iam:GetRole", slr_arn)]), cluster, pod_role)


def test_pull_through_cache_rule_actions_take_no_resource(sandbox: Sandbox, fresh_account: None) -> None:
    actions = ["ecr:CreatePullThroughCacheRule", "ecr:DescribePullThroughCacheRules"]
    wrong = RoleSession(sandbox, [allow(actions, f"arn:aws:ecr:us-west-2:{ACCOUNT}:*")])
    prefix = f"c-{uuid.uuid4().hex[:6]}"
    answer = refused(wrong.client("ecr").describe_pull_through_cache_rules)
    # a JSON-protocol service: AccessDeniedException, resource "*"
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert "ecr:DescribePullThroughCacheRules on resource: *" in answer["Error"]["Message"]
    # on "*", the account's first rule still needs ECR's service-linked role
    star = RoleSession(sandbox, [allow(actions, "*")])
    answer = refused(
        star.client("ecr").create_pull_through_cache_rule,
        ecrRepositoryPrefix=prefix,
        upstreamRegistryUrl="public.ecr.aws",
    )
    assert (
        f"iam:CreateServiceLinkedRole on resource: arn:aws:iam::{ACCOUNT}:role/aws-service-role/"
        in (answer["Error"]["Message"])
    )
    slr = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/pullthroughcache.ecr.amazonaws.com/{ECR_CACHE_SLR}"
    granted = RoleSession(sandbox, [allow(actions, "*"), allow("iam:CreateServiceLinkedRole", slr)])
    granted.client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws"
    )
    sandbox.boto3_client("ecr").delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)


def test_iam_refusals_are_query_xml_access_denied_and_an_explicit_deny_wins(sandbox: Sandbox) -> None:
    prefix = f"arn:aws:iam::{ACCOUNT}:role/x-*"
    session = RoleSession(
        sandbox, [allow("iam:GetRole", "*"), {"Effect": "Deny", "Action": "iam:GetRole", "Resource": prefix}]
    )
    answer = refused(session.client("iam").get_role, RoleName="x-denied")
    assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]) == (403, "AccessDenied")
    assert answer["Error"]["Message"].endswith("with an explicit deny in an identity-based policy")
    # NotResource / another resource: the Allow applies
    assert refused(session.client("iam").get_role, RoleName="no-such-role")["Error"]["Code"] == "NoSuchEntity"


def test_ec2_refusals_are_unauthorized_operation(sandbox: Sandbox) -> None:
    session = RoleSession(sandbox, [])
    answer = refused(session.client("ec2").describe_route_tables)
    assert answer["Error"]["Code"] == "UnauthorizedOperation"
    assert "not authorized to perform: ec2:DescribeRouteTables on resource: *" in answer["Error"]["Message"]


def test_a_key_the_sandbox_never_issued_is_refused(sandbox: Sandbox) -> None:
    stranger = boto3.session.Session(
        aws_access_key_id="AKIASTRANGER00000000", aws_secret_access_key="x", region_name=sandbox.region
    )
    with pytest.raises(ClientError) as caught:
        stranger.client("eks", endpoint_url=sandbox.endpoint_url).list_clusters()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as caught:
        stranger.client("iam", endpoint_url=sandbox.endpoint_url).list_roles()
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_a_state_machine_role_without_log_delivery_cannot_log(sandbox: Sandbox) -> None:
    log_group = f"arn:aws:logs:us-west-2:{ACCOUNT}:log-group:/aws/vendedlogs/states/test:*"
    logging = {"level": "ERROR", "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": log_group}}]}
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    quiet = RoleSession(sandbox, [])
    sfn = sandbox.boto3_client("stepfunctions")
    answer = refused(
        sfn.create_state_machine,
        name=f"sm-{uuid.uuid4().hex[:6]}",
        definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{quiet.name}",
        loggingConfiguration=logging,
    )
    assert answer["Error"] == {
        **answer["Error"],
        "Code": "AccessDeniedException",
        "Message": "The state machine IAM Role is not authorized to access the Log Destination",
    }
    logger = RoleSession(sandbox, [allow(list(LOG_DELIVERY_ACTIONS), "*")])
    sfn.create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:6]}",
        definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/{logger.name}",
        loggingConfiguration=logging,
    )


def test_a_registry_pull_is_authorized_for_the_token_owner(sandbox: Sandbox) -> None:
    # A token of a role without the pull actions: the registry answers 403 DENIED with IAM's message
    session = RoleSession(sandbox, [allow("ecr:GetAuthorizationToken", "*")])
    token = session.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    request = urllib.request.Request(f"{sandbox.registry_url}/v2/ecr-public/nginx/nginx/manifests/stable")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 403
    body = json.loads(caught.value.read())
    (error,) = body["errors"]
    assert error["code"] == "DENIED"
    assert f"User: {session.arn} is not authorized to perform: ecr:BatchGetImage" in error["message"]


def test_the_policies_are_read_again_after_an_iam_write_through_the_front_not_after_a_read(sandbox: Sandbox) -> None:
    # Given a role allowed iam:GetRole, its policies read once by its first call, then its grant deleted behind the
    # front (where the sandbox cannot see it: a test's own doing, as if IAM had not propagated the change yet)
    session = RoleSession(sandbox, [allow("iam:GetRole", "*")])
    iam = session.client("iam")
    iam.get_role(RoleName=session.name)
    sandbox.moto_client("iam").delete_role_policy(RoleName=session.name, PolicyName="grants")

    # When the role reads IAM again, then its policies are still those read: a read changes no policy, and
    # re-reading them after every iam:Get* made each burst of role lookups re-read every role's policies
    assert iam.get_role(RoleName=session.name)["Role"]["RoleName"] == session.name
    assert iam.get_role(RoleName=session.name)["Role"]["RoleName"] == session.name

    # When IAM is changed through the front (the administrator tags the role), then they are read again: refused
    sandbox.boto3_client("iam").tag_role(RoleName=session.name, Tags=[{"Key": "k", "Value": "v"}])
    answer = refused(iam.get_role, RoleName=session.name)
    assert answer["Error"]["Code"] == "AccessDenied"
