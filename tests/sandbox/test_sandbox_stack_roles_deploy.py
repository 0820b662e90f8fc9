"""The stack's roles are made through IAM's API as CloudFormation makes them, and a second deployment updates them."""

from __future__ import annotations

import json
from typing import Any

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.stack_roles import RoleSpec, deploy

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
READ = {"Statement": [{"Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": "*"}]}
WRITE = {"Statement": [{"Effect": "Allow", "Action": "eks:CreateFargateProfile", "Resource": "*"}]}
BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
VPC = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


# Not a name the sandbox's stack uses: the test shares the session's sandbox (not moto's mock_aws, whose start and
# stop reset every backend of the process, the shared sandbox's cluster included).
ROLE = "stack-roles-deploy-test"


def role(inline: dict[str, Any], managed: tuple[str, ...]) -> dict[str, RoleSpec]:
    return {"FnRole": RoleSpec("FnRole", ROLE, TRUST, managed, inline)}


def policies(iam: Any) -> tuple[dict[str, Any], set[str]]:
    names = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    inline = {name: iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"] for name in names}
    attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]}
    return inline, attached


def test_a_new_role_gets_its_policies_and_an_update_removes_the_ones_it_no_longer_has(sandbox: Sandbox) -> None:
    iam = sandbox.moto_client("iam")

    # Given a first deployment of a role with two inline and two managed policies
    deploy(iam, role({"Read": READ, "Write": WRITE}, (BASIC, VPC)))
    inline, attached = policies(iam)
    assert (sorted(inline), attached) == (["Read", "Write"], {BASIC, VPC})
    assert inline["Read"]["Statement"] == READ["Statement"]

    # When the template drops one of each and changes the trust policy
    trust = json.loads(json.dumps(TRUST).replace("lambda.amazonaws.com", "states.amazonaws.com"))
    deploy(iam, {"FnRole": RoleSpec("FnRole", ROLE, trust, (BASIC,), {"Read": READ})})

    # Then the role has exactly what the template now says
    inline, attached = policies(iam)
    assert (sorted(inline), attached) == (["Read"], {BASIC})
    document = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert document["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
