"""Static checks of template.yaml: wiring, least privilege, and the sandbox's one-environment rule (docs/design.md §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import template_iam
from project_template import TEMPLATE

from fargate_sandbox.stack_roles import stack_roles
from fargate_sandbox.template_model import Deployment

ROOT = Path(__file__).resolve().parents[2]
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {name: r for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}


def test_every_function_has_its_folder_and_handler() -> None:
    for name, function in FUNCTIONS.items():
        folder = ROOT / function["Properties"]["CodeUri"]
        module, _, attribute = function["Properties"]["Handler"].partition(".")
        source = (folder / f"{module}.py").read_text()
        assert f"def {attribute}(" in source, f"{name}: {folder}/{module}.py has no {attribute}"


def test_every_function_folder_is_in_the_template() -> None:
    wired = {Path(f["Properties"]["CodeUri"]).name for f in FUNCTIONS.values()}
    folders = {p.parent.name for p in (ROOT / "functions").glob("*/app.py")}
    assert folders == wired


@pytest.mark.parametrize("statement", list(template_iam.statements()), ids=lambda s: f"{s.role}/{s.sid}")
def test_every_statement_grants_actions_on_the_resource_types_aws_authorizes_them_on(
    statement: template_iam.TemplateStatement,
) -> None:
    # Any wildcard, not only "*" or "service:*": "eks:*Profile" grants CreateFargateProfile and DeleteFargateProfile.
    assert not [a for a in statement.actions if "*" in a or "?" in a], "wildcard action"
    assert template_iam.resource_type_problems(statement) == []


@pytest.mark.parametrize(
    ("action", "resource", "wrong"),
    [
        # The wrong grants the template once had: each must be reported.
        ("eks:CreateFargateProfile", "arn:aws:eks:us-west-2:111122223333:fargateprofile/*/*/*", "cluster"),
        ("ecr:CreatePullThroughCacheRule", "arn:aws:ecr:us-west-2:111122223333:*", "only Resource '*'"),
        ("ecr:DeletePullThroughCacheRule", "arn:aws:ecr:us-west-2:111122223333:*", "only Resource '*'"),
        ("iam:GetRole", "*", "name them instead"),
    ],
)
def test_a_resource_of_the_wrong_type_is_reported(action: str, resource: str, wrong: str) -> None:
    statement = template_iam.TemplateStatement("Role", "Policy", "Sid", {"Action": action, "Resource": resource})
    (problem,) = template_iam.resource_type_problems(statement)
    assert wrong in problem


def test_no_two_functions_disagree_on_an_environment_variable() -> None:
    values: dict[str, tuple[str, Any]] = {}
    globals_env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for key, value in globals_env.items():
        values[key] = ("Globals", value)
    for name, function in FUNCTIONS.items():
        for key, value in function["Properties"].get("Environment", {}).get("Variables", {}).items():
            if key in values:
                assert values[key][1] == value, f"{key}: {values[key][0]} and {name} disagree"
            values[key] = (name, value)


def test_functions_run_on_arm64_python312_with_tracing_and_json_logs() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["LoggingConfig"]["LogFormat"] == "JSON"


@pytest.mark.parametrize(
    ("parameters", "attached"),
    [
        ({}, False),
        ({"KubernetesSubnetIds": "subnet-0a1b2c3d", "KubernetesSecurityGroupIds": "sg-0a1b2c3d"}, True),
    ],
)
def test_the_vpc_execution_policy_is_attached_only_when_the_kubernetes_functions_run_in_a_vpc(
    parameters: dict[str, str], attached: bool
) -> None:
    stack = stack_roles(
        ROOT / "template.yaml",
        Deployment(
            template_iam.ACCOUNT, template_iam.REGION, parameter_overrides={**template_iam.PARAMETERS, **parameters}
        ),
    )
    vpc_policy = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    with_vpc_policy = {logical_id for logical_id, role in stack.roles.items() if vpc_policy in role.managed_policy_arns}
    in_vpc = {
        f"{name}Role" for name, function in FUNCTIONS.items() if "VpcConfig" in function["Properties"]
    }  # the Kubernetes steps
    assert in_vpc and with_vpc_policy == (in_vpc if attached else set())
