"""Least privilege in template.yaml, checkov on it, the API's AWS_IAM authorization, the pod
execution role's aws:SourceArn condition, and the credential scan of the session's logs.

The per-statement least-privilege rules live in tests/unit/test_template.py (no Action "*"; every action granted on the
resource types the Service Authorization Reference lists for it, "*" only for actions that take no resource); this
module counts and reports them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import reliability_secret_scan
import template_iam
from unit.test_template import RESOURCES, TEMPLATE

from fargate_app.aws.iam import trust_policy
from fargate_app.config import Settings
from fargate_sandbox.sandbox import Sandbox

pytestmark = pytest.mark.xdist_group("reliability_security")
ROOT = Path(__file__).resolve().parents[2]
# checkov pins boto3 < 1.36, which the dev environment cannot share: `make checkov` installs it in its own venv.
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov"))


def test_no_wildcard_action_and_star_resources_only_for_actions_without_a_resource(figures: Any) -> None:
    statements = list(template_iam.statements())
    wildcard_actions = [(s.role, a) for s in statements for a in s.actions if "*" in a or "?" in a]
    problems = [(s.role, s.sid, p) for s in statements for p in template_iam.resource_type_problems(s)]
    star = sorted({a for s in statements if s.resources == ["*"] for a in s.actions})
    figures.add(
        "security",
        check="IAM statements of the SAM-translated template",
        result=f"{len(statements)} statements, {len(wildcard_actions)} with a wildcard action, {len(problems)} on a "
        "resource type AWS does not authorize",
        ok=bool(statements) and not wildcard_actions and not problems,
    )
    figures.add(
        "security",
        check="Resource '*'",
        result=f"{len(star)} actions, each without resource-level permissions (Service Authorization Reference)",
        ok=not problems,  # an action with resource-level permissions on '*' is one of the problems above
    )
    assert statements and wildcard_actions == [] and problems == []


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason(figures: Any) -> None:
    # checkov reads SAM templates itself (AWS::Serverless::* resources), no translation needed
    row = figures.row("checkov", passed=0, failed=None, skipped=None, parsing_errors=None, skips_without_reason=None)
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
    skips = [
        (name, skip)
        for name, resource in RESOURCES.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    row.update(
        version=summary["checkov_version"],
        passed=summary["passed"],
        failed=len(failed),
        skipped=summary["skipped"],
        skips_in_template=len(skips),
        parsing_errors=summary["parsing_errors"],
        skips_without_reason=sum(len(skip.get("comment", "")) <= 20 for _, skip in skips),
    )
    for check in sorted({skip["id"] for _, skip in skips}):
        reason = next(skip["comment"] for _, skip in skips if skip["id"] == check)
        count = sum(skip["id"] == check for _, skip in skips)
        figures.add("checkov_skips", check=check, resources=count, reason=reason)
    assert (summary["parsing_errors"], failed) == (0, []), failed
    assert summary["passed"] > 0
    assert len(skips) == summary["skipped"]
    assert all(len(skip.get("comment", "")) > 20 for _, skip in skips), "every skip needs its reason"


def test_the_api_requires_aws_iam_on_every_route(figures: Any) -> None:
    api = RESOURCES["AppsApi"]["Properties"]
    routes = [
        event["Properties"]
        for resource in RESOURCES.values()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "Api"
    ]
    open_routes = [route for route in routes if route.get("Auth", {}).get("Authorizer", "AWS_IAM") != "AWS_IAM"]
    default = api.get("Auth", {}).get("DefaultAuthorizer")
    figures.add(
        "security",
        check="API authorization",
        result=f"default {default}; {len(routes) - len(open_routes)}/{len(routes)} routes AWS_IAM",
        ok=default == "AWS_IAM" and bool(routes) and not open_routes,
    )
    assert default == "AWS_IAM"
    assert routes and open_routes == []
    assert "Auth" not in TEMPLATE["Globals"].get("Api", {}) or TEMPLATE["Globals"]["Api"]["Auth"] != "NONE"


def test_the_pod_execution_role_trust_is_limited_to_the_clusters_fargate_profiles(
    settings: Settings, figures: Any
) -> None:
    policy = trust_policy(settings, "blog")
    statements = policy["Statement"]
    expected = {
        "Principal": {"Service": "eks-fargate-pods.amazonaws.com"},
        "SourceArn": "arn:aws:eks:us-west-2:111122223333:fargateprofile/blog/*",
    }
    seen = [
        {"Principal": s.get("Principal"), "SourceArn": s.get("Condition", {}).get("ArnLike", {}).get("aws:SourceArn")}
        for s in statements
    ]
    figures.add(
        "security",
        check="pod execution role trust",
        result=f"{len(statements)} statement(s); aws:SourceArn = {', '.join(str(s['SourceArn']) for s in seen)}",
        ok=seen == [expected],
    )
    assert seen == [expected]


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


PLANTED_TEST = """
def test_logs_an_eks_token():
    print("calling the cluster with Bearer k8s-aws-v1." + "aHR0cHM6Ly9zdHMu" * 3)


def test_logs_nothing_secret():
    print('{"message": "cache rule ready", "prefix": "ecr-public"}')
"""


def test_a_token_planted_in_a_tests_output_fails_that_test(tmp_path: Path, figures: Any) -> None:
    # Given a test session with the credential scan, one of whose tests prints an EKS bearer token
    (tmp_path / "conftest.py").write_text(
        "import reliability_secret_scan\n\n\ndef pytest_configure(config):\n"
        "    config.pluginmanager.register(reliability_secret_scan.SecretScanPlugin(), 'scan')\n"
    )
    (tmp_path / "test_planted.py").write_text(PLANTED_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    paths = [ROOT / "tests" / "reliability", ROOT / "sandbox", ROOT / "layers" / "core", ROOT / "tests"]
    # When it runs (its own process: the scan's state is per process; its failure texts are not shown to ours)
    answer = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--show-capture=no", "-rf", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = answer.stdout + answer.stderr
    failed = "credential leaked into the test output: EKS bearer token in Captured stdout call" in output
    withheld = "k8s-aws-v1.aHR0" not in output
    figures.add(
        "security",
        check="credential scan on a planted token",
        result=f"the leaking test {'failed' if failed else 'PASSED'}, the clean one passed: {'1 failed, 1 passed' in output}; "
        f"value {'withheld' if withheld else 'SHOWN'}",
        ok=failed and withheld and "1 failed, 1 passed" in output,
    )
    # Then the leaking test fails naming the kind and the section, never the value; the clean test passes
    assert answer.returncode == 1, output
    assert failed and "1 failed, 1 passed" in output, output[-2000:]
    assert withheld
