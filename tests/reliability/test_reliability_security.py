"""Item 5 of issue 8: least privilege in template.yaml, checkov on it, the API's AWS_IAM authorization, the pod
execution role's aws:SourceArn condition, and the credential scan of the session's logs.

The per-statement least-privilege rules live in tests/unit/test_template.py (no Action "*"; every action granted on the
resource types the Service Authorization Reference lists for it, "*" only for actions that take no resource); this
module counts and reports them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import reliability_secret_scan
import template_iam
from unit.test_template import RESOURCES, TEMPLATE

from fargate_app.aws.iam import trust_policy
from fargate_app.config import Settings
from fargate_sandbox.sandbox import Sandbox

pytestmark = pytest.mark.xdist_group("reliability")
ROOT = Path(__file__).resolve().parents[2]
# checkov pins boto3 < 1.36, which the dev environment cannot share: `make checkov` installs it in its own venv.
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov"))


def test_no_wildcard_action_and_star_resources_only_for_actions_without_a_resource(figures: Any) -> None:
    statements = list(template_iam.statements())
    wildcard_actions = [(s.role, a) for s in statements for a in s.actions if a == "*" or a.endswith(":*")]
    problems = [(s.role, s.sid, p) for s in statements for p in template_iam.resource_type_problems(s)]
    assert statements and wildcard_actions == [] and problems == []
    figures.add(
        "security",
        check="IAM statements of the SAM-translated template",
        result=f"{len(statements)} statements, 0 with Action '*', 0 on a resource type AWS does not authorize",
    )
    star = sorted({a for s in statements if s.resources == ["*"] for a in s.actions})
    figures.add(
        "security",
        check="Resource '*'",
        result=f"{len(star)} actions, each without resource-level permissions (Service Authorization Reference)",
    )


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason(figures: Any) -> None:
    # checkov reads SAM templates itself (AWS::Serverless::* resources), no translation needed
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make checkov`"
    answer = subprocess.run(
        [str(CHECKOV), "-f", "template.yaml", "--framework", "cloudformation", "--quiet", "--compact", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(answer.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert (summary["parsing_errors"], failed) == (0, []), failed
    assert summary["passed"] > 0
    skips = [
        (name, skip)
        for name, resource in RESOURCES.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert len(skips) == summary["skipped"]
    assert all(len(skip.get("comment", "")) > 20 for _, skip in skips), "every skip needs its reason"
    figures.add(
        "security",
        check=f"checkov {summary['checkov_version']} on template.yaml",
        result=f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped with a reason",
    )
    for check in sorted({skip["id"] for _, skip in skips}):
        reason = next(skip["comment"] for _, skip in skips if skip["id"] == check)
        count = sum(skip["id"] == check for _, skip in skips)
        figures.add("checkov_skips", check=check, resources=count, reason=reason)


def test_the_api_requires_aws_iam_on_every_route(figures: Any) -> None:
    api = RESOURCES["AppsApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    routes = [
        event["Properties"]
        for resource in RESOURCES.values()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "Api"
    ]
    assert routes and all(route.get("Auth", {}).get("Authorizer", "AWS_IAM") == "AWS_IAM" for route in routes)
    assert "Auth" not in TEMPLATE["Globals"].get("Api", {}) or TEMPLATE["Globals"]["Api"]["Auth"] != "NONE"
    figures.add("security", check="API authorization", result=f"AWS_IAM on all {len(routes)} routes")


def test_the_pod_execution_role_trust_is_limited_to_the_clusters_fargate_profiles(
    settings: Settings, figures: Any
) -> None:
    policy = trust_policy(settings, "blog")
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "eks-fargate-pods.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == (
        "arn:aws:eks:us-west-2:111122223333:fargateprofile/blog/*"
    )
    figures.add("security", check="pod execution role trust", result="aws:SourceArn = the cluster's Fargate profiles")


def test_the_credential_scan_recognises_the_sandboxs_real_tokens(sandbox: Sandbox) -> None:
    # Given a registry token the sandbox really issued, and the seeded secret value
    token = sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    secret = json.loads(
        sandbox.boto3_client("secretsmanager").get_secret_value(SecretId="ecr-pullthroughcache/docker-hub")[
            "SecretString"
        ]
    )["accessToken"]
    # When log lines carrying them are scanned, then each is found by kind; a clean line is not
    assert "ECR authorization token" in reliability_secret_scan.find_credentials(f"pulling with {token}")
    assert reliability_secret_scan.find_credentials(f'{{"token": "{secret}"}}') == ["seeded upstream secret value"]
    eks = "Authorization: Bearer k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20v"
    assert reliability_secret_scan.find_credentials(eks) == ["EKS bearer token"]
    assert reliability_secret_scan.find_credentials("aws_secret_access_key=sandbox") == ["AWS secret access key"]
    assert reliability_secret_scan.find_credentials('{"message": "cache rule ready", "prefix": "ecr-public"}') == []
