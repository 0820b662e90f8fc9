"""Invalid requests are refused with the field and the rule, through the API (400) and through a
console-shaped start of the provision state machine (FAILED with InvalidRequest at ValidateRequest), and nothing is
created: IAM roles, Fargate profiles, pull-through-cache rules, ECR repositories, Kubernetes objects and executions
are counted before and after."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from reliability_support import (
    REQUEST,
    api_event,
    call_api,
    cause_of,
    created_since,
    inventory,
    post_app,
    provision_executions,
)
from request_edits import edited

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_bad_input")
SECRET_ARN = "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
DOCKER_HUB = "docker.io/library/redis:7"
MAX_BODY_BYTES = 64 * 1024


def request_with(**changes: Any) -> dict[str, Any]:
    """The walkthrough's request with fields replaced (``...`` removes one)."""
    return edited(REQUEST, **changes)


def docker_hub_with(
    region: str = "us-west-2", account: str = "111122223333", name: str = "ecr-pullthroughcache/docker-hub"
) -> dict[str, Any]:
    """A Docker Hub image with a credential ARN differing from the sandbox's valid one in what the case names."""
    return request_with(image=DOCKER_HUB, credentialArn=SECRET_ARN.format(region=region, account=account, name=name))


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
    ("credential-wrong-region", docker_hub_with(region="us-east-1"), "credentialArn"),
    ("credential-wrong-account", docker_hub_with(account="999988887777"), "credentialArn"),
    ("credential-without-prefix", docker_hub_with(name="dockerhub"), "credentialArn"),
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
    # Fail fast: what the API server, ECR or EKS Fargate would refuse only after the role, profile and rule exist
    ("service-name-starts-with-digit", request_with(app="9lives", port=80), "app"),
    ("ingress-path-double-slash", request_with(port=80, expose={"ingress": {"path": "/a//b"}}), "expose.ingress.path"),
    ("ingress-path-dot-segment", request_with(port=80, expose={"ingress": {"path": "/a/./b"}}), "expose.ingress.path"),
    ("ingress-path-dot-dot", request_with(port=80, expose={"ingress": {"path": "/a/../b"}}), "expose.ingress.path"),
    (
        "ingress-path-encoded-slash",
        request_with(port=80, expose={"ingress": {"path": "/a%2fb"}}),
        "expose.ingress.path",
    ),
    (
        "ingress-path-encoded-slash-upper",
        request_with(port=80, expose={"ingress": {"path": "/a%2Fb"}}),
        "expose.ingress.path",
    ),
    ("ingress-path-ends-dot-dot", request_with(port=80, expose={"ingress": {"path": "/a/.."}}), "expose.ingress.path"),
    ("ingress-path-ends-dot", request_with(port=80, expose={"ingress": {"path": "/a/."}}), "expose.ingress.path"),
    (
        "ingress-path-too-long",
        request_with(port=80, expose={"ingress": {"path": "/" + "a" * 300}}),
        "expose.ingress.path",
    ),
    ("ingress-unknown-field", request_with(port=80, expose={"ingress": {"host": "x"}}), "expose.ingress.host"),
    ("expose-not-an-object", request_with(expose="ingress"), "expose"),
    ("platform-arm64-on-fargate", request_with(platform="linux/arm64"), "platform"),
    ("platform-no-os", request_with(platform="amd64"), "platform"),
    (
        "credential-for-a-public-upstream",
        request_with(
            credentialArn=SECRET_ARN.format(
                region="us-west-2", account="111122223333", name="ecr-pullthroughcache/docker-hub"
            )
        ),
        "credentialArn",
    ),
    (
        "credential-for-an-ecr-upstream",
        request_with(
            image="111122223333.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0",
            credentialArn=SECRET_ARN.format(
                region="us-west-2", account="111122223333", name="ecr-pullthroughcache/docker-hub"
            ),
        ),
        "credentialArn",
    ),
    ("credential-missing-for-chainguard", request_with(image="cgr.dev/chainguard/nginx:latest"), "credentialArn"),
    ("credential-missing-for-ghcr", request_with(image="ghcr.io/stefanprodan/podinfo:6.7.0"), "credentialArn"),
    ("credential-missing-for-azure", request_with(image="team.azurecr.io/app:1.0"), "credentialArn"),
    ("image-digest-without-tag", request_with(image="public.ecr.aws/nginx/nginx@sha256:" + "a" * 64), "image"),
    ("image-tag-too-long", request_with(image="public.ecr.aws/nginx/nginx:" + "t" * 129), "image"),
    ("image-tag-starts-with-dot", request_with(image="public.ecr.aws/nginx/nginx:.stable"), "image"),
    ("image-empty-tag", request_with(image="public.ecr.aws/nginx/nginx:"), "image"),
    ("image-double-slash", request_with(image="public.ecr.aws/nginx//nginx:stable"), "image"),
    ("image-trailing-space", request_with(image="public.ecr.aws/nginx/nginx:stable "), "image"),
    ("image-empty-digest", request_with(image="public.ecr.aws/nginx/nginx:stable@"), "image"),
    ("image-ecr-bad-region", request_with(image="111122223333.dkr.ecr.nowhere.amazonaws.com/team/api:1.0"), "image"),
    ("image-ecr-short-account", request_with(image="1111.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0"), "image"),
    ("image-localhost", request_with(image="localhost:5000/team/app:1.0"), "image"),
    ("app-empty", request_with(app=""), "app"),
    ("namespace-empty", request_with(namespace=""), "namespace"),
    ("namespace-too-long", request_with(namespace="n" * 64), "namespace"),
    ("namespace-leading-dash", request_with(namespace="-fargate"), "namespace"),
    ("cluster-empty", request_with(cluster=""), "cluster"),
    ("cluster-leading-dash", request_with(cluster="-blog"), "cluster"),
    ("replicas-negative", request_with(replicas=-1), "replicas"),
    ("port-zero", request_with(port=0), "port"),
    ("port-negative", request_with(port=-80), "port"),
    ("cpu-zero", request_with(cpu="0"), "cpu"),
    ("cpu-garbage", request_with(cpu="fast"), "cpu"),
    ("memory-zero", request_with(memory="0"), "memory"),
    ("memory-millis", request_with(memory="512m"), "memory"),
    ("label-value-number", request_with(labels={"tier": 3}), "labels.tier"),
    ("label-key-name-too-long", request_with(labels={"k" * 64: "v"}), "labels"),
    ("label-key-prefix-not-dns", request_with(labels={"Team_A/tier": "v"}), "labels"),
    ("label-key-empty-name", request_with(labels={"example.com/": "v"}), "labels"),
    ("subnets-number", request_with(subnets=[1234]), "subnets.0"),
    ("subnets-too-many", request_with(subnets=[f"subnet-{i:08x}" for i in range(17)]), "subnets"),
    ("cache-prefix-too-long", request_with(cachePrefix="c" * 31), "cachePrefix"),
    ("cache-prefix-double-slash", request_with(cachePrefix="ecr//public"), "cachePrefix"),
    ("field-wrong-case", request_with(Replicas=2), "Replicas"),
]
# Requests that are not a v1 object at all: both paths refuse them as a whole ("request").
CASES += [
    # Kubernetes' own namespaces, protected whoever asks (the stack's ProtectedNamespaces default)
    ("namespace-kube-system", request_with(namespace="kube-system"), "namespace"),
    ("namespace-kube-public", request_with(namespace="kube-public"), "namespace"),
    ("namespace-kube-node-lease", request_with(namespace="kube-node-lease"), "namespace"),
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
        "body-duplicate-key",
        b'{"cluster": "blog", "app": "a", "namespace": "n", "image": "nginx", "app": "b"}',
        400,
        "InvalidRequest",
        "app",
    ),
    (
        "body-duplicate-nested-key",
        json.dumps(REQUEST)[:-1].encode() + b', "port": 80, "expose": {"ingress": {"path": "/a", "path": "/b"}}}',
        400,
        "InvalidRequest",
        "path",
    ),
    (
        "body-over-64-kib",
        json.dumps({**REQUEST, "labels": {"tier": "x" * MAX_BODY_BYTES}}).encode(),
        413,
        "RequestTooLarge",
        "",
    ),
]


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
        rule = (answer.get("fields") or {}).get(field)
        figures.add(
            "bad_input",
            case=name,
            path="API POST /apps",
            status=status,
            field=field,
            rule=rule or answer.get("message"),
            refused=status == 400 and answer.get("error") == "InvalidRequest" and bool(rule),
        )
        # Then 400 InvalidRequest names the field and gives its rule
        assert (status, answer["error"]) == (400, "InvalidRequest"), (name, answer)
        assert rule, (name, answer)
    for name, raw, expected_status, error, field in BODY_CASES:
        status, answer = call_api(sandbox, workflows, api_event("POST", "/apps", raw))
        rule = (answer.get("fields") or {}).get(field) if field else answer.get("message")
        figures.add(
            "bad_input",
            case=name,
            path="API POST /apps",
            status=status,
            field=field or "body",
            rule=rule,
            refused=(status, answer.get("error")) == (expected_status, error)
            and bool(rule if field else "64 KiB" in str(rule)),
        )
        assert (status, answer["error"]) == (expected_status, error), (name, answer)
        assert rule if field else "64 KiB" in answer["message"], (name, answer)
    # And nothing was created or started
    record_effects(figures, "API POST /apps", before, inventory(sandbox), executions_before, workflows)
    assert inventory(sandbox) == before
    assert provision_executions(workflows) == executions_before


def record_effects(
    figures: Any,
    path: str,
    before: dict[str, list[str]],
    after: dict[str, list[str]],
    executions_before: Any,
    workflows: Workflows,
) -> None:
    """What a run of refused requests changed in the account and the cluster: the report's "nothing created"."""
    created = created_since(before, after)
    started = len(set(provision_executions(workflows)) - set(executions_before)) if executions_before is not None else 0
    figures.add(
        "bad_input_effects",
        path=path,
        created=[f"{kind}: {', '.join(names)}" for kind, names in sorted(created.items())],
        started=started,
    )


def test_a_console_start_fails_at_validate_request_naming_field_and_rule(
    sandbox: Sandbox, workflows: Workflows, figures: Any, burst_lock: Callable[[], Any]
) -> None:
    # Given the sandbox's resources before
    before = inventory(sandbox)
    # When each invalid request is the input of a console start (all at once: a burst of cold ValidateRequest
    # starts, kept apart from the other worker's bursts and given time on a loaded machine)
    with burst_lock():
        started = {name: workflows.start("ProvisionStateMachine", body) for name, body, _ in CASES}
        outcomes = {name: workflows.wait(started[name], timeout_s=180) for name, _, _ in CASES}
    for name, body, field in CASES:
        outcome = outcomes[name]
        cause = cause_of(outcome)
        _, api_answer = post_app(sandbox, workflows, body)
        states = workflows.state_order(started[name])
        api_rule = f"{field}: {(api_answer.get('fields') or {}).get(field)}"
        figures.add(
            "bad_input",
            case=name,
            path="console start",
            status=outcome.get("error"),
            field=field,
            rule=cause.get("cause"),
            refused=(outcome["status"], outcome.get("error"), cause.get("step"))
            == ("FAILED", "InvalidRequest", "ValidateRequest")
            and api_rule in str(cause.get("cause"))
            and states == ["ValidateRequest", "ValidateRequestFailed"],
        )
        # Then the execution fails with InvalidRequest at ValidateRequest, naming the field and the API's rule
        assert (outcome["status"], outcome.get("error"), cause.get("step")) == (
            "FAILED",
            "InvalidRequest",
            "ValidateRequest",
        ), (name, outcome)
        assert api_rule in cause["cause"], (name, cause)
        assert cause["compensated"] == [] and cause["leftovers"] == []
        # refused before anything exists: no Compensate
        assert states == ["ValidateRequest", "ValidateRequestFailed"], (name, states)
    # And nothing was created
    record_effects(figures, "console start", before, inventory(sandbox), None, workflows)
    assert inventory(sandbox) == before


# What only the account can tell, checked by ValidateRequest before the first write:
# (case, request changes, error, words of the message, how to set the account up or None).
ACCOUNT_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("cluster-does-not-exist", {"cluster": "nope"}, "ClusterNotFound", "EKS cluster nope does not exist"),
    ("cluster-not-active", {"cluster": "starting"}, "ClusterNotActive", "is CREATING"),
    ("cluster-kubernetes-too-old", {"cluster": "legacy"}, "ClusterVersionUnsupported", "runs Kubernetes 1.21"),
    ("subnet-does-not-exist", {"subnets": ["subnet-0123456789abcdef0"]}, "SubnetNotFound", "subnet-0123456789abcdef0"),
    ("subnet-of-another-vpc", {"subnets": ["<other-vpc>"]}, "SubnetNotFound", "not in VPC"),
    ("subnet-public", {"subnets": ["<public>"]}, "SubnetNotPrivate", "route to an internet gateway"),
    (
        "secret-does-not-exist",
        {
            "image": DOCKER_HUB,
            "credentialArn": SECRET_ARN.format(
                region="us-west-2", account="111122223333", name="ecr-pullthroughcache/nope"
            ),
        },
        "UpstreamCredentialInvalid",
        "does not exist",
    ),
    (
        "credential-other-than-the-rules",
        {"image": DOCKER_HUB, "cachePrefix": "team-hub", "credentialArn": "<other-credential>"},
        "CacheRuleConflict",
        "give that credentialArn, or choose another cachePrefix",
    ),
    (
        "ecr-of-another-account-without-its-rule",
        {"image": "444455556666.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0", "cachePrefix": "team-ecr"},
        "CacheRuleMissing",
        "customRoleArn",
    ),
]


def _account_fixtures(sandbox: Sandbox) -> dict[str, str]:
    """Clusters and subnets the cases name: a cluster still CREATING, one on Kubernetes 1.21, a subnet of another
    VPC (made as the administrator, before the inventory is taken)."""
    from moto.eks.models import eks_backends

    eks, ec2 = sandbox.moto_client("eks"), sandbox.moto_client("ec2")
    network = sandbox.seeds.network
    subnets = [*network.private_subnets, network.public_subnet]
    role = "arn:aws:iam::111122223333:role/sandbox-eks-cluster-role"
    existing = eks.list_clusters()["clusters"]
    for name, version in (("starting", "1.31"), ("legacy", "1.21")):
        if name not in existing:
            eks.create_cluster(name=name, version=version, roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    eks_backends[sandbox.account_id][sandbox.region].clusters["starting"].status = "CREATING"
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]
    # a team's Docker Hub rule pulling with the seeded credential, and another team's credential
    sm, ecr = sandbox.boto3_client("secretsmanager"), sandbox.boto3_client("ecr")
    other_name = "ecr-pullthroughcache/docker-hub-team-b"
    try:
        other_credential = sm.describe_secret(SecretId=other_name)["ARN"]
    except sm.exceptions.ResourceNotFoundException:
        other_credential = sm.create_secret(Name=other_name, SecretString='{"username":"b","accessToken":"b"}')["ARN"]
    rules = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    if "team-hub" not in {rule["ecrRepositoryPrefix"] for rule in rules}:
        ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="team-hub",
            upstreamRegistryUrl="registry-1.docker.io",
            credentialArn=sandbox.seeds.secret_arns["ecr-pullthroughcache/docker-hub"],
        )
    return {"<other-vpc>": other, "<public>": network.public_subnet, "<other-credential>": other_credential}


def test_what_only_the_account_can_tell_is_refused_before_any_write(
    sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given the account as the cases need it, and its resources before
    placeholders = _account_fixtures(sandbox)
    before = inventory(sandbox)
    for name, changes, error, words in ACCOUNT_CASES:
        if "subnets" in changes:
            changes = {**changes, "subnets": [placeholders.get(s, s) for s in changes["subnets"]]}
        if "credentialArn" in changes:
            changes = {**changes, "credentialArn": placeholders.get(changes["credentialArn"], changes["credentialArn"])}
        # When the request is started (the API accepts it: only the account can tell)
        arn = workflows.start("ProvisionStateMachine", request_with(**changes))
        outcome = workflows.wait(arn, timeout_s=180)
        cause = cause_of(outcome)
        states = workflows.state_order(arn)
        figures.add(
            "bad_input",
            case=name,
            path="account check",
            status=outcome.get("error"),
            field="(account)",
            rule=cause.get("cause"),
            refused=(outcome["status"], outcome.get("error"), cause.get("step")) == ("FAILED", error, "ValidateRequest")
            and words in str(cause.get("cause"))
            and states == ["ValidateRequest", "ValidateRequestFailed"],
        )
        # Then ValidateRequest refuses it with a named error that says what is wrong, and nothing runs after it
        assert (outcome["status"], outcome.get("error"), cause.get("step")) == ("FAILED", error, "ValidateRequest"), (
            name,
            outcome,
        )
        assert words in cause["cause"], (name, cause)
        assert states == ["ValidateRequest", "ValidateRequestFailed"], name
    # And nothing was created
    record_effects(figures, "account check", before, inventory(sandbox), None, workflows)
    assert inventory(sandbox) == before
