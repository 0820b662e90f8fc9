"""Item 1 of issue 8: invalid requests are refused with the field and the rule, through the API (400) and through a
console-shaped start of the provision state machine (FAILED with InvalidRequest at ValidateRequest), and nothing is
created: IAM roles, Fargate profiles, pull-through-cache rules, ECR repositories, Kubernetes objects and executions
are counted before and after."""

from __future__ import annotations

import json
from typing import Any

import pytest
from reliability_support import REQUEST, api_event, call_api, cause_of, inventory, post_app
from request_edits import edited

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability")
SECRET_ARN = "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
DOCKER_HUB = "docker.io/library/redis:7"
MAX_BODY_BYTES = 64 * 1024


def request_with(**changes: Any) -> dict[str, Any]:
    """The walkthrough's request with fields replaced (``...`` removes one)."""
    return edited(REQUEST, **changes)


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing-cluster", request_with(cluster=...), "cluster"),
    ("missing-app", request_with(app=...), "app"),
    ("missing-namespace", request_with(namespace=...), "namespace"),
    ("missing-image", request_with(image=...), "image"),
    ("unknown-field", request_with(annotations={"a": "b"}), "annotations"),
    ("annotation-injection-in-labels", request_with(labels={"kubernetes.io/change-cause": "x"}), "labels"),
    ("app-uppercase", request_with(app="Demo-App"), "app"),
    ("app-unicode", request_with(app="démo"), "app"),
    ("app-cyrillic-homoglyph", request_with(app="dеmo"), "app"),
    ("namespace-emoji", request_with(namespace="fargate-🚀"), "namespace"),
    ("cluster-unicode", request_with(cluster="blog™"), "cluster"),
    ("app-too-long", request_with(app="a" * 64), "app"),
    ("app-trailing-dash", request_with(app="demo-"), "app"),
    ("namespace-dot", request_with(namespace="far.gate"), "namespace"),
    ("cluster-too-long", request_with(cluster="c" * 101), "cluster"),
    ("app-null", request_with(app=None), "app"),
    ("replicas-string", request_with(replicas="3"), "replicas"),
    ("replicas-float", request_with(replicas=1.5), "replicas"),
    ("replicas-bool", request_with(replicas=True), "replicas"),
    ("replicas-zero", request_with(replicas=0), "replicas"),
    ("replicas-too-many", request_with(replicas=51), "replicas"),
    ("port-string", request_with(port="80"), "port"),
    ("port-out-of-range", request_with(port=70000), "port"),
    ("cpu-number", request_with(cpu=1), "cpu"),
    ("cpu-too-large", request_with(cpu="32"), "cpu"),
    ("memory-garbage", request_with(memory="lots"), "memory"),
    ("cpu-memory-no-fargate-size", request_with(cpu="16", memory="200Gi"), "memory"),
    ("labels-list", request_with(labels=["tier=web"]), "labels"),
    ("labels-too-many", request_with(labels={f"k{i}": "v" for i in range(6)}), "labels"),
    ("label-value-newline-injection", request_with(labels={"tier": "web\nmalicious: true"}), "labels"),
    ("label-key-selector-injection", request_with(labels={"tier,env=prod": "web"}), "labels"),
    ("label-value-space", request_with(labels={"tier": "web app"}), "labels"),
    ("label-reserved-app-name", request_with(labels={"app.kubernetes.io/name": "other"}), "labels"),
    ("label-reserved-eks-prefix", request_with(labels={"eks.amazonaws.com/compute-type": "ec2"}), "labels"),
    ("label-value-too-long", request_with(labels={"tier": "v" * 64}), "labels"),
    ("subnets-string", request_with(subnets="subnet-0abc1234"), "subnets"),
    ("subnets-bad-id", request_with(subnets=["subnet-xyz"]), "subnets"),
    ("subnets-repeated", request_with(subnets=["subnet-0abc1234", "subnet-0abc1234"]), "subnets"),
    ("subnets-empty", request_with(subnets=[]), "subnets"),
    ("image-empty", request_with(image=""), "image"),
    ("image-short-digest", request_with(image="public.ecr.aws/nginx/nginx@sha256:abc123"), "image"),
    ("image-uppercase-digest", request_with(image="public.ecr.aws/nginx/nginx@sha256:" + "A" * 64), "image"),
    ("image-unknown-digest-algorithm", request_with(image="public.ecr.aws/nginx/nginx@md5:" + "a" * 32), "image"),
    ("image-digest-non-hex", request_with(image="public.ecr.aws/nginx/nginx@sha256:" + "g" * 64), "image"),
    ("image-unsupported-registry", request_with(image="registry.example.com/team/app:1.0"), "image"),
    ("image-uppercase-repository", request_with(image="public.ecr.aws/NGINX/nginx:stable"), "image"),
    ("image-shell-injection", request_with(image="nginx:stable;rm -rf /"), "image"),
    ("image-too-long", request_with(image="public.ecr.aws/" + "a" * 600 + ":1"), "image"),
    ("credential-missing-for-docker-hub", request_with(image=DOCKER_HUB), "credentialArn"),
    (
        "credential-wrong-region",
        request_with(
            image=DOCKER_HUB,
            credentialArn=SECRET_ARN.format(
                region="us-east-1", account="111122223333", name="ecr-pullthroughcache/docker-hub"
            ),
        ),
        "credentialArn",
    ),
    (
        "credential-wrong-account",
        request_with(
            image=DOCKER_HUB,
            credentialArn=SECRET_ARN.format(
                region="us-west-2", account="999988887777", name="ecr-pullthroughcache/docker-hub"
            ),
        ),
        "credentialArn",
    ),
    (
        "credential-without-prefix",
        request_with(
            image=DOCKER_HUB,
            credentialArn=SECRET_ARN.format(region="us-west-2", account="111122223333", name="dockerhub"),
        ),
        "credentialArn",
    ),
    (
        "credential-not-an-arn",
        request_with(image=DOCKER_HUB, credentialArn="ecr-pullthroughcache/docker-hub"),
        "credentialArn",
    ),
    (
        "credential-ssm-arn",
        request_with(
            image=DOCKER_HUB,
            credentialArn="arn:aws:ssm:us-west-2:111122223333:parameter/ecr-pullthroughcache/docker-hub",
        ),
        "credentialArn",
    ),
    ("cache-prefix-uppercase", request_with(cachePrefix="ECR-Public"), "cachePrefix"),
    ("cache-prefix-too-short", request_with(cachePrefix="e"), "cachePrefix"),
    ("platform-windows", request_with(platform="windows/amd64"), "platform"),
    ("expose-without-port", request_with(expose={"ingress": {"scheme": "internet-facing", "path": "/"}}), "port"),
    (
        "ingress-scheme-unknown",
        request_with(port=80, expose={"ingress": {"scheme": "public"}}),
        "expose.ingress.scheme",
    ),
    ("ingress-path-injection", request_with(port=80, expose={"ingress": {"path": '/"; drop'}}), "expose.ingress.path"),
    ("oversized-label-value", request_with(labels={"tier": "x" * 60000}), "labels"),
]
# Requests that are not a v1 object at all: both paths refuse them as a whole ("request").
CASES += [
    ("request-is-an-array", [REQUEST], "request"),  # type: ignore[list-item]
    ("request-is-a-string", "blog/fargate/demo-app", "request"),  # type: ignore[list-item]
    ("request-is-a-number", 42, "request"),  # type: ignore[list-item]
]
# Bodies the API refuses before any field is read: (case, raw body, status, error, field or None).
BODY_CASES: list[tuple[str, bytes, int, str, str]] = [
    ("body-empty", b"", 400, "InvalidRequest", "body"),
    ("body-not-json", b'{"cluster": "blog",', 400, "InvalidRequest", "body"),
    ("body-not-utf8", b'{"app": "\xff\xfe"}', 400, "InvalidRequest", "body"),
    (
        "body-over-64-kib",
        json.dumps({**REQUEST, "labels": {"tier": "x" * MAX_BODY_BYTES}}).encode(),
        413,
        "RequestTooLarge",
        "",
    ),
]


def provision_executions(workflows: Workflows) -> list[str]:
    sfn = workflows.sandbox.boto3_client("stepfunctions")
    machine = workflows.state_machine_arns["ProvisionStateMachine"]
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]


def test_cases_are_distinct_and_at_least_forty() -> None:
    names = [name for name, _, _ in CASES] + [name for name, *_ in BODY_CASES]
    assert len(names) == len(set(names)) and len(CASES) >= 40
    assert len({json.dumps(body, sort_keys=True) for _, body, _ in CASES}) == len(CASES)


def test_the_api_refuses_each_invalid_request_naming_field_and_rule(
    sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given the sandbox's resources and the provision executions before
    before, executions_before = inventory(sandbox), provision_executions(workflows)
    for name, body, field in CASES:
        # When the request is POSTed to /apps
        status, answer = post_app(sandbox, workflows, body)
        # Then 400 InvalidRequest names the field and gives its rule
        assert (status, answer["error"]) == (400, "InvalidRequest"), (name, answer)
        assert answer["fields"].get(field), (name, answer)
        figures.add(
            "bad_input", case=name, path="API POST /apps", status=status, field=field, rule=answer["fields"][field]
        )
    for name, raw, expected_status, error, field in BODY_CASES:
        status, answer = call_api(sandbox, workflows, api_event("POST", "/apps", raw))
        assert (status, answer["error"]) == (expected_status, error), (name, answer)
        assert answer["fields"].get(field) if field else "64 KiB" in answer["message"], (name, answer)
        figures.add(
            "bad_input",
            case=name,
            path="API POST /apps",
            status=status,
            field=field or "body",
            rule=answer.get("fields", {}).get(field) or answer["message"],
        )
    # And nothing was created or started
    assert inventory(sandbox) == before
    assert provision_executions(workflows) == executions_before


def test_a_console_start_fails_at_validate_request_naming_field_and_rule(
    sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given the sandbox's resources before
    before = inventory(sandbox)
    # When each invalid request is the input of a console start (all at once)
    started = {name: workflows.start("ProvisionStateMachine", body) for name, body, _ in CASES}
    for name, body, field in CASES:
        outcome = workflows.wait(started[name], timeout_s=60)
        # Then the execution fails with InvalidRequest at ValidateRequest, naming the field and the API's rule
        cause = cause_of(outcome)
        assert (outcome["status"], outcome.get("error"), cause.get("step")) == (
            "FAILED",
            "InvalidRequest",
            "ValidateRequest",
        ), (name, outcome)
        _, api_answer = post_app(sandbox, workflows, body)
        assert f"{field}: {api_answer['fields'][field]}" in cause["cause"], (name, cause)
        assert cause["compensated"] == [] and cause["leftovers"] == []
        states = workflows.state_order(started[name])
        assert states == ["ValidateRequest", "ValidateRequestFailed", "Compensate", "ProvisionFailed"], (name, states)
        figures.add(
            "bad_input", case=name, path="console start", status=outcome["error"], field=field, rule=cause["cause"]
        )
    # And nothing was created
    assert inventory(sandbox) == before
