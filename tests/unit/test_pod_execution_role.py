"""EnsurePodExecutionRole against moto's IAM (AWS-managed policies loaded)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from unit_support import fail_with, holders_of

from fargate_app.aws.errors import translate
from fargate_app.aws.iam import (
    delete_pod_execution_role,
    ensure_pod_execution_role,
    grant_cache_prefix,
    role_name,
    trust_policy,
)
from fargate_app.config import Settings
from fargate_app.errors import AwsThrottled, IamRoleNotYetPropagated, PermanentError, RoleConflict
from fargate_app.holders import take

pytestmark = pytest.mark.usefixtures("aws_iam")


def test_creates_the_walkthrough_role(settings: Settings) -> None:
    # Given no role for the cluster
    iam = boto3.client("iam")
    # When the step runs
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    # Then the role has the walkthrough's trust policy, the managed policy and the pull-through grant
    assert role.created is True
    assert role.name == "FargateAppPodExecution-blog"
    assert role.arn == "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog"
    described = iam.get_role(RoleName=role.name)["Role"]
    assert (
        described["Description"]
        == "EKS Fargate pod execution role for cluster blog, managed by fargate-app-provisioner"
    )
    statement = described["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "eks-fargate-pods.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:eks:us-west-2:111122223333:fargateprofile/blog/*"}
    }
    attached = iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == ["arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"]
    inline = iam.get_role_policy(RoleName=role.name, PolicyName="pull-through-cache-ecr-public")["PolicyDocument"]
    assert inline["Statement"][0]["Action"] == ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    assert inline["Statement"][0]["Resource"] == "arn:aws:ecr:us-west-2:111122223333:repository/ecr-public/*"
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role.name)["Tags"]}
    assert tags == {"managed-by": "fargate-app-provisioner", "fargate-app/cluster": "blog"}


def test_second_run_reuses_the_role_and_adds_the_new_prefix(settings: Settings) -> None:
    first = ensure_pod_execution_role(settings, "blog", "ecr-public")
    second = ensure_pod_execution_role(settings, "blog", "quay")
    assert (first.created, second.created) == (True, False)
    assert second.arn == first.arn
    names = boto3.client("iam").list_role_policies(RoleName=first.name)["PolicyNames"]
    assert sorted(names) == ["pull-through-cache-ecr-public", "pull-through-cache-quay"]


EXECUTION = "arn:aws:states:us-west-2:111122223333:execution:ProvisionStateMachine:blog-fargate-demo-app-1"
OTHER_EXECUTION = "arn:aws:states:us-west-2:111122223333:execution:ProvisionStateMachine:blog-fargate-web-1"


def _tags(name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in boto3.client("iam").list_role_tags(RoleName=name)["Tags"]}


def test_the_role_names_who_created_it_and_its_holders_who_use_it(settings: Settings) -> None:
    # Given an execution of app blog/fargate/demo-app that creates the role
    first = ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION, holder="blog/fargate/demo-app")
    assert _tags(first.name)["fargate-app/created-by"] == EXECUTION
    # When its step is retried (say IAM had not propagated), then the role is still the execution's own
    assert ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION).created is True
    # and when another app's execution finds it, it is not that one's, and both apps hold it
    other = ensure_pod_execution_role(settings, "blog", "quay", OTHER_EXECUTION, holder="blog/fargate/web")
    assert other.created is False
    assert holders_of(f"podExecutionRole/{first.name}") == ["blog/fargate/demo-app", "blog/fargate/web"]
    assert _tags(first.name)["fargate-app/created-by"] == EXECUTION


def test_a_failure_after_the_take_lets_go_of_the_role_unless_the_app_held_it_before(settings: Settings) -> None:
    # Given a role of that name made by hand with another trust policy (RoleConflict after the take)
    boto3.client("iam").create_role(
        RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )
    resource = f"podExecutionRole/{role_name(settings, 'blog')}"
    # When an app's provision ensures it, then it fails and the app holds nothing
    with pytest.raises(RoleConflict):
        ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION, holder="blog/fargate/demo-app")
    assert holders_of(resource) == []
    # But an app that held it already (an update) keeps holding it through the same failure
    take(settings, resource, "blog/fargate/web")
    with pytest.raises(RoleConflict):
        ensure_pod_execution_role(settings, "blog", "ecr-public", OTHER_EXECUTION, holder="blog/fargate/web")
    assert holders_of(resource) == ["blog/fargate/web"]


def test_a_retried_create_is_still_its_own_and_odd_names_are_valid_tags(settings: Settings) -> None:
    # Given an execution whose name holds characters IAM tag values refuse, which created the role
    odd = EXECUTION.replace("demo-app-1", "demo(app)!'1")
    ensure_pod_execution_role(settings, "blog", "ecr-public", odd)
    assert _tags(role_name(settings, "blog"))["fargate-app/created-by"].endswith(":blog-fargate-demo_app___1")
    # and another execution that found it since
    ensure_pod_execution_role(settings, "blog", "quay", OTHER_EXECUTION)
    # When the first execution's step is retried, then it is still its role
    assert ensure_pod_execution_role(settings, "blog", "ecr-public", odd).created is True


def test_a_role_made_by_hand_is_never_tagged(settings: Settings) -> None:
    boto3.client("iam").create_role(
        RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(trust_policy(settings, "blog"))
    )
    role = ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION)
    assert role.created is False
    assert _tags(role.name) == {}


def test_reuses_a_role_created_by_hand_with_the_same_trust(settings: Settings) -> None:
    # Given the walkthrough's role created by hand (same trust policy, differently formatted, no tags)
    document = trust_policy(settings, "blog")
    document["Statement"][0]["Action"] = ["sts:AssumeRole"]
    boto3.client("iam").create_role(
        RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(document, indent=4)
    )
    # When the step runs, then it is reused, not replaced
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    assert role.created is False


def test_refuses_to_overwrite_a_foreign_role_with_another_trust(settings: Settings) -> None:
    iam = boto3.client("iam")
    foreign = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(foreign))
    with pytest.raises(RoleConflict, match="FargateAppPodExecution-blog exists with a different trust policy"):
        ensure_pod_execution_role(settings, "blog", "ecr-public")
    # and nothing was changed on it
    kept = iam.get_role(RoleName=role_name(settings, "blog"))["Role"]["AssumeRolePolicyDocument"]
    assert kept["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert iam.list_attached_role_policies(RoleName=role_name(settings, "blog"))["AttachedPolicies"] == []


def test_a_foreign_role_whose_trust_has_several_statements_is_a_conflict_too(settings: Settings) -> None:
    # Given a role under our name trusting two services (two statements: compared by meaning, in any order)
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    foreign = {
        "Version": "2012-10-17",
        "Statement": [
            {**statement, "Principal": {"Service": "ec2.amazonaws.com"}},
            {**statement, "Principal": {"Service": ["lambda.amazonaws.com", "eks-fargate-pods.amazonaws.com"]}},
        ],
    }
    boto3.client("iam").create_role(RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(foreign))
    # When the step runs, then it is refused as a conflict (not a crash comparing the statements)
    with pytest.raises(RoleConflict, match="exists with a different trust policy"):
        ensure_pod_execution_role(settings, "blog", "ecr-public")


def test_compensation_deletes_the_role_with_its_policies_and_finds_a_missing_one_gone(settings: Settings) -> None:
    # Given the role as the step leaves it (a managed policy attached, an inline one for the cache prefix)
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    # When compensation deletes it, twice
    first, again = delete_pod_execution_role(role.name), delete_pod_execution_role(role.name)
    # Then it is gone; the second call finds nothing to delete
    assert (first, again) == (True, False)
    assert role.name not in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]


def test_repairs_the_trust_of_a_role_it_owns(settings: Settings) -> None:
    iam = boto3.client("iam")
    iam.create_role(
        RoleName=role_name(settings, "blog"),
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        Tags=[{"Key": "managed-by", "Value": "fargate-app-provisioner"}],
    )
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    assert role.created is False
    trust = iam.get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "eks-fargate-pods.amazonaws.com"}


def test_long_cluster_names_give_valid_role_names(settings: Settings) -> None:
    name = role_name(settings, "c" * 100)
    assert len(name) == 64
    assert name != role_name(settings, "c" * 99)
    # IAM's limit is 64: a name of 64 is kept as it is, one of 65 is cut and told apart by the cluster's hash
    assert role_name(settings, "c" * 41) == f"FargateAppPodExecution-{'c' * 41}"
    digest = hashlib.sha256(b"c" * 42).hexdigest()[:8]
    assert role_name(settings, "c" * 42) == f"FargateAppPodExecution-{'c' * 32}-{digest}"


def test_iam_not_yet_seeing_a_new_role_is_retryable(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given IAM answers NoSuchEntity for the role it has just created (eventual consistency)
    iam = boto3.client("iam")
    fail_with(iam, "AttachRolePolicy", "NoSuchEntity", "The role cannot be found", 404)
    monkeypatch.setattr("fargate_app.aws.iam.client", lambda service: iam)
    # When the step runs, then the error is the retryable one the state machine backs off on
    with pytest.raises(IamRoleNotYetPropagated) as not_visible:
        ensure_pod_execution_role(settings, "blog", "ecr-public")
    assert str(not_visible.value) == (
        "IAM role FargateAppPodExecution-blog was just created and is not yet visible; retrying"
    )


def test_handler_returns_the_role(
    handler: Callable[[str], ModuleType], lambda_context: Any, settings: Settings
) -> None:
    app = handler("ensure_pod_execution_role")
    event = {"request": {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": "nginx"}}
    with pytest.raises(Exception) as caught:  # docker.io needs a credential: the handler re-validates the request
        app.lambda_handler(event, lambda_context)
    assert type(caught.value).__name__ == "InvalidRequest"
    event["request"]["image"] = "public.ecr.aws/nginx/nginx:stable"
    result = app.lambda_handler({**event, "executionArn": EXECUTION}, lambda_context)
    assert result == {
        "arn": "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog",
        "name": "FargateAppPodExecution-blog",
        "created": True,
    }
    assert _tags(result["name"])["fargate-app/created-by"] == EXECUTION  # the state machine passes its execution


def test_a_concurrent_change_to_the_shared_role_is_retried_not_fatal() -> None:
    # Every provision on a cluster changes its one role (the cache prefix's grant): IAM may answer
    # ConcurrentModification (IAM API reference, TagRole and PutRolePolicy errors), which the state machine must
    # retry like throttling
    refused = ClientError(
        {"Error": {"Code": "ConcurrentModification", "Message": "Rate exceeded"}, "ResponseMetadata": {}}, "TagRole"
    )
    assert isinstance(translate(refused, "tag IAM role FargateAppPodExecution-blog"), AwsThrottled)


# --- every IAM refusal names the call it refused ------------------------------------------------------------------
def _refuse(operation: str, code: str) -> Any:
    """moto's IAM client, answering ``operation`` with ``code`` (a 4xx error document, as IAM would)."""
    iam = boto3.client("iam")
    fail_with(iam, operation, code, f"{operation} refused", 409)
    return iam


FOREIGN_TRUST = {"Version": "2012-10-17", "Statement": []}
OURS = [{"Key": "managed-by", "Value": "fargate-app-provisioner"}]


@pytest.mark.parametrize(
    ("operation", "existing", "context"),
    [
        ("GetRole", None, "read IAM role FargateAppPodExecution-blog"),
        ("CreateRole", None, "create IAM role FargateAppPodExecution-blog"),
        ("ListRoleTags", FOREIGN_TRUST, "read the tags of IAM role FargateAppPodExecution-blog"),
        ("UpdateAssumeRolePolicy", FOREIGN_TRUST, "update the trust policy of IAM role FargateAppPodExecution-blog"),
        ("AttachRolePolicy", None, "grant policies to IAM role FargateAppPodExecution-blog"),
        ("PutRolePolicy", None, "grant policies to IAM role FargateAppPodExecution-blog"),
    ],
)
def test_a_refused_call_of_the_step_is_named_in_its_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, operation: str, existing: Any, context: str
) -> None:
    # Given (for some) a role of ours with another trust, and IAM refusing one call of the step
    if existing is not None:
        boto3.client("iam").create_role(
            RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(existing), Tags=OURS
        )
    monkeypatch.setattr(
        "fargate_app.aws.iam.client", lambda service: _refuse(operation, "EntityTemporarilyUnmodifiable")
    )
    # When the step runs, then the error names what was refused, in IAM's words
    with pytest.raises(PermanentError) as refused:
        ensure_pod_execution_role(settings, "blog", "ecr-public")
    assert str(refused.value) == f"{context}: EntityTemporarilyUnmodifiable: {operation} refused"


def test_a_role_created_by_another_execution_in_between_is_read_again_and_not_ours(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IAM answering our create with EntityAlreadyExists: another execution created the role after our read
    iam = boto3.client("iam")

    def created_in_between(**kwargs: Any) -> None:
        iam.meta.events.unregister("before-call.iam.CreateRole", created_in_between)
        boto3.client("iam").create_role(
            RoleName=role_name(settings, "blog"),
            AssumeRolePolicyDocument=json.dumps(trust_policy(settings, "blog")),
            Tags=[*OURS, {"Key": "fargate-app/created-by", "Value": OTHER_EXECUTION}],
        )

    iam.meta.events.register("before-call.iam.CreateRole", created_in_between)
    monkeypatch.setattr("fargate_app.aws.iam.client", lambda service: iam)
    # When the step runs
    role = ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION)
    # Then it uses that role (read again), which it did not create, granted the cache prefix
    assert (role.name, role.created) == (role_name(settings, "blog"), False)
    assert role.arn == f"arn:aws:iam::111122223333:role/{role.name}"
    assert iam.list_role_policies(RoleName=role.name)["PolicyNames"] == ["pull-through-cache-ecr-public"]


@pytest.mark.parametrize("operation", ["ListAttachedRolePolicies", "DeleteRole"])
def test_a_refused_deletion_names_the_role(monkeypatch: pytest.MonkeyPatch, operation: str, settings: Settings) -> None:
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    monkeypatch.setattr("fargate_app.aws.iam.client", lambda service: _refuse(operation, "DeleteConflict"))
    with pytest.raises(PermanentError) as refused:
        delete_pod_execution_role(role.name)
    assert str(refused.value) == f"delete IAM role {role.name}: DeleteConflict: {operation} refused"


def test_a_cache_prefix_grant_refused_names_the_prefix_and_the_role(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = ensure_pod_execution_role(settings, "blog", "ecr-public")
    monkeypatch.setattr("fargate_app.aws.iam.client", lambda service: _refuse("PutRolePolicy", "LimitExceeded"))
    with pytest.raises(PermanentError) as refused:
        grant_cache_prefix(settings, role.name, "quay")
    assert (
        str(refused.value) == f"grant cache prefix quay to IAM role {role.name}: LimitExceeded: PutRolePolicy refused"
    )


def test_a_cache_prefix_of_several_parts_names_its_policy_with_dashes(settings: Settings) -> None:
    # IAM policy names take [\w+=,.@-]: the "/" of a prefix such as team/ecr-public becomes "-"
    role = ensure_pod_execution_role(settings, "blog", "team/ecr-public")
    assert boto3.client("iam").list_role_policies(RoleName=role.name)["PolicyNames"] == [
        "pull-through-cache-team-ecr-public"
    ]


def test_a_role_created_meanwhile_that_iam_will_not_show_is_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given our create losing to another execution's, and IAM refusing our read of the role then
    iam = boto3.client("iam")
    reads: list[str] = []

    def created_in_between(**kwargs: Any) -> None:
        boto3.client("iam").create_role(
            RoleName=role_name(settings, "blog"), AssumeRolePolicyDocument=json.dumps(trust_policy(settings, "blog"))
        )

    def refuse_the_second_read(**kwargs: Any) -> Any:
        reads.append("GetRole")
        if len(reads) == 2:
            http = type("Response", (), {"status_code": 409})()
            error = {"Code": "EntityTemporarilyUnmodifiable", "Message": "GetRole refused"}
            return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 409}}
        return None

    iam.meta.events.register("before-call.iam.CreateRole", created_in_between)
    iam.meta.events.register("before-call.iam.GetRole", refuse_the_second_read)
    monkeypatch.setattr("fargate_app.aws.iam.client", lambda service: iam)
    with pytest.raises(PermanentError) as refused:
        ensure_pod_execution_role(settings, "blog", "ecr-public")
    assert str(refused.value) == (
        "read IAM role FargateAppPodExecution-blog: EntityTemporarilyUnmodifiable: GetRole refused"
    )
