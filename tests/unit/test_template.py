"""Static checks of template.yaml: wiring, least privilege, and the sandbox's one-environment rule (design.md §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {name: r for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}

# Actions AWS defines without resource-level permissions (Service Authorization Reference: the action's
# "Resource types" column is empty), so "Resource": "*" is the only way to grant them.
STAR_RESOURCE_ALLOWED = {
    "ec2:DescribeRouteTables": "EC2 Describe* actions support no resource-level permissions",
    "ecr:GetAuthorizationToken": "the token is for the whole registry; the action takes no resource",
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "logs:CreateLogDelivery": "vended log delivery actions take no resource",
    "logs:GetLogDelivery": "vended log delivery actions take no resource",
    "logs:UpdateLogDelivery": "vended log delivery actions take no resource",
    "logs:DeleteLogDelivery": "vended log delivery actions take no resource",
    "logs:ListLogDeliveries": "vended log delivery actions take no resource",
    "logs:PutResourcePolicy": "vended log delivery actions take no resource",
    "logs:DescribeResourcePolicies": "vended log delivery actions take no resource",
    "logs:DescribeLogGroups": "listing log groups takes no resource",
}


def _statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in RESOURCES.items():
        properties = resource.get("Properties", {})
        policies = properties.get("Policies", [])
        for policy in policies if isinstance(policies, list) else [policies]:
            if isinstance(policy, dict) and "Statement" in policy:
                found.extend((name, statement) for statement in policy["Statement"])
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                found.extend((name, s) for s in policy["PolicyDocument"]["Statement"])
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


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


@pytest.mark.parametrize(("resource", "statement"), _statements(), ids=lambda v: v if isinstance(v, str) else "")
def test_iam_statements_are_least_privilege(resource: str, statement: dict[str, Any]) -> None:
    actions = _as_list(statement["Action"])
    assert "*" not in actions and not any(a.endswith(":*") for a in actions), f"{resource}: wildcard action"
    if "*" in _as_list(statement.get("Resource")):
        unjustified = [a for a in actions if a not in STAR_RESOURCE_ALLOWED]
        assert not unjustified, f"{resource}: Resource '*' for {unjustified}"


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
