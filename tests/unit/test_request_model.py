"""The v1 request model (docs/design.md §2): every rule rejects with the field named, valid input is normalised."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from request_edits import REQUIRED_FIELDS, edited, walkthrough_request

from fargate_app.errors import InvalidRequest
from fargate_app.images import parse_reference
from fargate_app.kube.models import AppliedApp
from fargate_app.models import (
    ProvisionRequest,
    RequestEvent,
    loads_request_document,
    parse_request,
    parse_request_for,
)

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = walkthrough_request()
SECRET = "arn:aws:secretsmanager:us-west-2:111122223333:secret:ecr-pullthroughcache/docker-hub-AbCdEf"


def with_(**changes: Any) -> dict[str, Any]:
    return edited(BASE, **changes)


# (request, field the error must name, words of the rule the message must contain)
INVALID: list[tuple[dict[str, Any], str, str]] = [
    (with_(cluster=...), "cluster", "Field required"),
    (with_(app=...), "app", "Field required"),
    (with_(namespace=...), "namespace", "Field required"),
    (with_(image=...), "image", "Field required"),
    (with_(app="Demo-App"), "app", "DNS-1123"),
    (with_(app="demo-app\n"), "app", "DNS-1123"),  # `$` alone would let a trailing newline through
    (with_(labels={"tier": "web\n"}), "labels", "value must be"),
    (with_(image="nginx:1.27\n"), "image", "surrounding spaces"),
    (with_(image="nginx:1.2\n7"), "image", "tag"),
    (with_(app="demo_app"), "app", "DNS-1123"),
    (with_(app="-demo"), "app", "DNS-1123"),
    (with_(app="a" * 64), "app", "at most 63"),
    (with_(namespace="fargaté"), "namespace", "DNS-1123"),
    (with_(namespace="kube system"), "namespace", "DNS-1123"),
    (with_(cluster="-blog"), "cluster", "EKS cluster name"),
    (with_(cluster="b" * 101), "cluster", "1-100"),
    (with_(image="nginx:"), "image", "tag"),
    (with_(image="Nginx"), "image", "lowercase"),
    (with_(image="nginx@sha256:abc"), "image", "digest"),
    (with_(image="nginx@sha256:" + "A" * 64), "image", "64 lowercase hex"),
    (with_(image="example.com/team/app:1.0"), "image", "not an upstream ECR can cache"),
    (with_(image=" nginx"), "image", "surrounding spaces"),
    (with_(replicas=0), "replicas", "greater than or equal to 1"),
    (with_(replicas=51), "replicas", "less than or equal to 50"),
    (with_(replicas="2"), "replicas", "valid integer"),
    (with_(port=0), "port", "greater than or equal to 1"),
    (with_(port=70000), "port", "less than or equal to 65535"),
    (with_(cpu="lots"), "cpu", "Kubernetes quantity"),
    (with_(cpu="32"), "cpu", "at most 16 vCPU"),
    (with_(memory="512m"), "memory", "Kubernetes quantity"),
    (with_(memory="200Gi"), "memory", "fits no Fargate size"),
    (with_(labels={"tier": "web", "a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}), "labels", "at most 5"),
    (with_(labels={"bad key!": "x"}), "labels", "label key"),
    (with_(labels={"tier": "web$(rm -rf /)"}), "labels", "value must be"),
    (with_(labels={"app.kubernetes.io/name": "other"}), "labels", "reserved"),
    (with_(labels={"eks.amazonaws.com/compute-type": "ec2"}), "labels", "reserved"),
    # Kubernetes reserves both prefixes for its core components (Labels and Selectors, "Syntax and character set")
    (with_(labels={"kubernetes.io/arch": "amd64"}), "labels", "reserved"),
    (with_(labels={"k8s.io/owner": "team"}), "labels", "reserved"),
    (with_(labels={"tier": "x" * 64}), "labels", "at most 63"),
    (with_(subnets=["subnet-xyz"]), "subnets", "not a subnet id"),
    (with_(subnets=[]), "subnets", "at least 1"),
    (with_(subnets=["subnet-0abc1234", "subnet-0abc1234"]), "subnets", "must not repeat"),
    (with_(cachePrefix="E"), "cachePrefix", "at least 2"),
    (with_(cachePrefix="Ecr-Public"), "cachePrefix", "lowercase"),
    (with_(cachePrefix="x" * 31), "cachePrefix", "at most 30"),
    (with_(credentialArn="arn:aws:s3:::bucket"), "credentialArn", "Secrets Manager secret ARN"),
    (with_(credentialArn=SECRET.replace("ecr-pullthroughcache/", "other/")), "credentialArn", "must start with"),
    (with_(credentialArn=SECRET.replace("us-west-2", "eu-west-1")), "credentialArn", "region us-west-2"),
    (with_(credentialArn=SECRET.replace("111122223333", "444455556666")), "credentialArn", "account 111122223333"),
    (with_(image="docker.io/library/redis:7"), "credentialArn", "required for images from docker.io"),
    (with_(image="ghcr.io/stefanprodan/podinfo:6.7.0"), "credentialArn", "required for images from ghcr.io"),
    (with_(platform="windows/amd64"), "platform", "must be linux/amd64: EKS Fargate runs x86-64"),
    (with_(platform="linux/arm64"), "platform", "aws/containers-roadmap#1629"),
    (with_(expose={"ingress": {"scheme": "public"}}, port=80), "expose.ingress.scheme", "internet-facing"),
    (with_(expose={"ingress": {"path": "no-slash"}}, port=80), "expose.ingress.path", "pattern"),
    (with_(expose={"ingress": {}}), "port", "required with expose.ingress"),
    # Fail fast: what the API server or ECR would refuse after the role, profile and rule exist
    (with_(app="9lives", port=80), "app", "DNS-1035"),
    (with_(expose={"ingress": {"path": "/a//b"}}, port=80), "expose.ingress.path", "must not contain '//'"),
    (with_(expose={"ingress": {"path": "/a/./b"}}, port=80), "expose.ingress.path", "must not contain '/./'"),
    (with_(expose={"ingress": {"path": "/a/../b"}}, port=80), "expose.ingress.path", "must not contain '/../'"),
    (with_(expose={"ingress": {"path": "/a%2fb"}}, port=80), "expose.ingress.path", "must not contain '%2f'"),
    (with_(expose={"ingress": {"path": "/a%2Fb"}}, port=80), "expose.ingress.path", "must not contain '%2F'"),
    (with_(expose={"ingress": {"path": "/a/.."}}, port=80), "expose.ingress.path", "cannot end with '/..'"),
    (with_(expose={"ingress": {"path": "/a/."}}, port=80), "expose.ingress.path", "cannot end with '/.'"),
    (with_(credentialArn=SECRET), "credentialArn", "must not be given for images from public.ecr.aws"),
    (with_(image="public.ecr.aws/nginx/nginx@sha256:" + "a" * 64), "image", "a digest needs its tag too"),
    (with_(image="cgr.dev/chainguard/nginx:latest"), "credentialArn", "required for images from cgr.dev"),
    (
        with_(image="444455556666.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0", credentialArn=SECRET),
        "credentialArn",
        "with an IAM role, not a secret",
    ),
    (with_(image="registry.example.com/team/api:1.0"), "image", "cgr.dev"),
    (with_(image="public.ecr.aws/nginx/nginx:" + "t" * 129), "image", "tag"),
    (with_(image="public.ecr.aws/NGINX/nginx:stable"), "image", "lowercase"),
    (with_(replica=2), "replica", "unknown field"),
    (with_(expose={"loadBalancer": {}}), "expose.loadBalancer", "unknown field"),
]


@pytest.mark.parametrize(("request_body", "field", "rule"), INVALID, ids=[f"{i}-{c[1]}" for i, c in enumerate(INVALID)])
def test_invalid_request_names_the_field_and_the_rule(request_body: dict[str, Any], field: str, rule: str) -> None:
    # Given a request that breaks one rule
    # When it is validated for the sandbox account and region
    with pytest.raises(InvalidRequest) as caught:
        parse_request(request_body, region="us-west-2", account="111122223333")
    # Then the error keeps the field with its rule, and its message names the field first, then the rule
    problems = caught.value.problems
    assert field in problems, caught.value.message
    assert rule in problems[field]
    assert f"{field}: {problems[field]}" in caught.value.message


def test_there_are_at_least_thirty_invalid_cases() -> None:
    assert len(INVALID) >= 30
    assert len({(repr(body)) for body, _, _ in INVALID}) == len(INVALID)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(with_(app="Bad", replicas=0, colour="red"))
    assert set(caught.value.problems) == {"app", "replicas", "colour"}
    assert caught.value.message == "; ".join(f"{field}: {rule}" for field, rule in caught.value.problems.items())


def test_an_invalid_request_error_keeps_its_problems_across_a_process_boundary() -> None:
    # Given an error whose rule itself reads like "rule; field: rule" (no parsing of the message can recover it)
    error = InvalidRequest({"labels.team": "must be short; note: 63 characters at most", "app": "is required"})
    # When it is pickled (the sandbox's Lambda workers, multiprocessing) and read back
    copy = pickle.loads(pickle.dumps(error))
    # Then it is the same error with the same problems and message
    assert type(copy) is InvalidRequest
    assert copy.problems == error.problems
    assert copy.message == "labels.team: must be short; note: 63 characters at most; app: is required"


def test_a_request_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        parse_request(["cluster", "blog"])


def test_rejected_values_are_not_echoed() -> None:
    # Label values might carry anything (a token pasted by mistake): the message must not repeat the input.
    with pytest.raises(InvalidRequest) as caught:
        parse_request(with_(labels={"tier": "ghp_SECRETTOKEN!"}))
    assert "ghp_SECRETTOKEN" not in caught.value.message


def documented_defaults() -> dict[str, Any]:
    """docs/design.md §2's table, field → default: a `JSON` literal is the value; "required" is left out; any other
    words (a default resolved later, from the account) mean the request itself holds null."""
    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("## 2. The request") : design.index("## 3. Results")]
    defaults: dict[str, Any] = {}
    for field, default in re.findall(r"^\| `([\w.]+)` \| [^|]+ \| ([^|]+) \|", section, re.MULTILINE):
        literal = re.fullmatch(r"`(.+)`", default.strip())
        if default.strip() != "required":
            defaults[field] = json.loads(literal[1]) if literal else None
    return defaults


def test_defaults_are_the_documented_ones() -> None:
    # Given the walkthrough's request with only its required fields, and one asking for an ingress with no settings
    request = parse_request(BASE)
    minimal = request.to_json()
    ingress = parse_request(with_(port=80, expose={"ingress": {}})).to_json()["expose"]["ingress"]

    # Then each field holds the default docs/design.md §2 gives it, and the table names every optional field
    documented = documented_defaults()
    held = {
        **{field: value for field, value in minimal.items() if field not in REQUIRED_FIELDS},
        **{f"expose.ingress.{field}": value for field, value in ingress.items()},
    }
    assert held == {**documented, "expose": None}
    assert request.effective_cache_prefix == "ecr-public"
    assert request.pod_labels == {"app.kubernetes.io/name": "demo-app"}


def test_the_full_design_example_is_valid_and_round_trips() -> None:
    body = {
        **BASE,
        "image": "docker.io/library/redis:7",
        "replicas": 2,
        "port": 80,
        "cpu": "0.5",
        "memory": "1Gi",
        "labels": {"tier": "web"},
        "subnets": ["subnet-0def5678", "subnet-0abc1234"],
        "cachePrefix": "docker-hub",
        "credentialArn": SECRET,
        "platform": "linux/amd64",
        "expose": {"ingress": {"scheme": "internet-facing", "path": "/"}},
    }
    request = parse_request(body, region="us-west-2", account="111122223333")
    assert request.subnets == ["subnet-0abc1234", "subnet-0def5678"]  # sorted: the same request, the same name
    assert ProvisionRequest.model_validate(request.to_json()) == request


NORMALISED = [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("redis:7", "docker.io/library/redis:7"),
    ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx:stable", "docker.io/library/nginx:stable"),
    ("registry-1.docker.io/nginx", "docker.io/library/nginx:latest"),
    ("public.ecr.aws/nginx/nginx:stable", "public.ecr.aws/nginx/nginx:stable"),
    ("public.ecr.aws/eks-distro/kubernetes/pause:3.9", "public.ecr.aws/eks-distro/kubernetes/pause:3.9"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("quay.io/prometheus/busybox", "quay.io/prometheus/busybox:latest"),
    ("ghcr.io/stefanprodan/podinfo:6.7.0", "ghcr.io/stefanprodan/podinfo:6.7.0"),
    ("localhost:5000/team/app:v1", "localhost:5000/team/app:v1"),
    ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx@sha256:" + "a" * 64),
    ("nginx:1.27@sha256:" + "b" * 64, "docker.io/library/nginx:1.27@sha256:" + "b" * 64),
    ("my__org/my-app.v2:1_0", "docker.io/my__org/my-app.v2:1_0"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISED)
def test_image_references_normalise_like_docker(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_normalised_image_is_what_the_request_keeps() -> None:
    request = parse_request(with_(image="docker.io/redis:7", credentialArn=SECRET))
    assert request.image == "docker.io/library/redis:7"
    assert request.effective_cache_prefix == "docker-hub"
    assert request.image_reference.repository == "library/redis"


@pytest.mark.parametrize(
    ("image", "prefix"),
    [
        ("public.ecr.aws/nginx/nginx:stable", "ecr-public"),
        ("registry.k8s.io/pause:3.10", "k8s"),
        ("quay.io/prometheus/busybox:latest", "quay"),
        ("ghcr.io/stefanprodan/podinfo:6.7.0", "github"),
        ("registry.gitlab.com/group/project/app:1", "gitlab"),
        ("myregistry.azurecr.io/team/app:1", "azure"),
    ],
)
def test_default_cache_prefix_follows_the_upstream(image: str, prefix: str) -> None:
    credential = {"credentialArn": SECRET} if prefix in ("github", "gitlab", "azure") else {}
    assert parse_request(with_(image=image, **credential)).effective_cache_prefix == prefix


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [("250m", "512Mi"), ("250m", "1792Mi"), ("16", "119Gi"), ("0.5", "3Gi"), ("4", "8G")],
)
def test_requests_that_fit_a_fargate_size_are_accepted(cpu: str, memory: str) -> None:
    assert parse_request(with_(cpu=cpu, memory=memory)).cpu == cpu


def test_another_platform_is_accepted_only_when_the_stack_allows_it() -> None:
    assert parse_request(with_(platform="linux/arm64"), platforms=("linux/amd64", "linux/arm64")).platform == (
        "linux/arm64"
    )


@pytest.mark.parametrize(
    "image",
    [
        "cgr.dev/chainguard/nginx:latest",
        "444455556666.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0",
        "public.ecr.aws/nginx/nginx:stable@sha256:" + "a" * 64,
    ],
)
def test_every_upstream_ecr_supports_and_a_tag_with_its_digest_are_accepted(image: str) -> None:
    credential = {"credentialArn": SECRET.replace("docker-hub", "chainguard")} if image.startswith("cgr.dev") else {}
    request = parse_request(with_(image=image, **credential), region="us-west-2", account="111122223333")
    assert request.image == image


def test_a_key_given_twice_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest, match="replicas: is given twice in the body"):
        loads_request_document('{"cluster": "blog", "replicas": 1, "replicas": 3}')
    with pytest.raises(InvalidRequest, match="path: is given twice"):
        loads_request_document('{"expose": {"ingress": {"path": "/a", "path": "/b"}}}')


def test_problems_read_as_rules_not_as_pydantic_says_them() -> None:
    # Given a request with an unknown field, a rule of our own (a value error) and a body that is no object
    with pytest.raises(InvalidRequest) as unknown:
        parse_request(with_(colour="red"))
    with pytest.raises(InvalidRequest) as ours:
        parse_request(with_(app="9lives", port=80))
    with pytest.raises(InvalidRequest) as not_an_object:
        parse_request(["cluster"])
    # Then an unknown field says what v1 accepts, our rules lose pydantic's "Value error, " and a body that is no
    # object is the request's problem
    assert unknown.value.problems["colour"] == "unknown field (v1 requests accept only the documented fields)"
    assert ours.value.problems["app"].startswith("must start with a letter when port is given")
    assert list(not_an_object.value.problems) == ["request"]


DNS1123 = (
    "must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
EKS_NAME = "must be an EKS cluster name: 1-100 letters, digits, '-' or '_', starting with a letter or digit"
LABEL_VALUE = "value must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"app": "a" * 64}, {"app": DNS1123}),
        ({"namespace": "-fargate"}, {"namespace": DNS1123}),
        ({"cluster": ""}, {"cluster": EKS_NAME}),
        ({"cluster": "c" * 101}, {"cluster": EKS_NAME}),
    ],
)
def test_names_are_refused_with_their_exact_rule(changes: dict[str, Any], problems: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_request(with_(**changes))
    assert refused.value.problems == problems


@pytest.mark.parametrize(
    "changes",
    [
        {"app": "a" * 63},
        {"namespace": "n" * 63},
        {"cluster": "c"},
        {"cluster": "c" * 100},
        {"labels": {"tier": "v" * 63}},
        {"labels": {"k" * 63: "v"}},
        {"labels": {("p" * 61 + ".io") + "/" + "k": "v"}},  # a prefix of 64 characters
        {"labels": {".".join(["p" * 63] * 3) + "." + "p" * 61 + "/k": "v"}},  # a prefix of exactly 253 characters
        {"image": "public.ecr.aws/" + "/".join(["r" * 63] * 3) + "/" + "r" * 48 + ":1"},  # a name of 255 characters
    ],
    ids=[
        "app-63",
        "namespace-63",
        "cluster-1",
        "cluster-100",
        "value-63",
        "key-63",
        "prefix-64",
        "prefix-253",
        "name-255",
    ],
)
def test_names_at_their_longest_or_shortest_are_accepted(changes: dict[str, Any]) -> None:
    parse_request(with_(**changes))


NAME_RULE = "at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
LONG_PREFIX = ".".join(["p" * 63] * 3) + "." + "p" * 62  # 254 characters


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"tier": "v" * 64}, f"label 'tier': value must be {NAME_RULE}"),
        ({"k" * 64: "v"}, f"label key '{'k' * 64}': name must be {NAME_RULE}"),
        ({"": "v"}, f"label key '': name must be {NAME_RULE}"),
        (
            {f"{LONG_PREFIX}/k": "v"},
            f"label key '{LONG_PREFIX}/k': prefix must be a DNS subdomain of at most 253 characters",
        ),
        ({"Bad_Prefix/k": "v"}, "label key 'Bad_Prefix/k': prefix must be a DNS subdomain of at most 253 characters"),
    ],
    ids=["value-64", "key-64", "key-empty", "prefix-254", "prefix-not-dns"],
)
def test_label_keys_and_values_are_refused_with_their_rule(labels: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_request(with_(labels=labels))
    assert refused.value.problems == {"labels": problem}


def test_a_repository_name_over_255_characters_is_refused() -> None:
    image = "public.ecr.aws/" + "/".join(["r" * 63] * 3) + "/" + "r" * 49 + ":1"
    with pytest.raises(InvalidRequest) as refused:
        parse_request(with_(image=image))
    assert refused.value.problems["image"].endswith("repository name must be at most 255 characters")


def test_a_body_that_is_no_object_or_no_json_says_so_exactly() -> None:
    with pytest.raises(InvalidRequest) as not_an_object:
        parse_request(["cluster"])
    assert not_an_object.value.problems == {"request": "must be a JSON object"}
    with pytest.raises(InvalidRequest) as not_json:
        loads_request_document("{not json")
    assert not_json.value.problems == {
        "body": "is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    }


def test_the_stacks_own_account_region_and_platforms_bind_a_request(settings: Any) -> None:
    # The credential's secret must be in the stack's own region and account, the platform one the stack accepts
    elsewhere = SECRET.replace("us-west-2", "eu-west-1").replace("111122223333", "444455556666")
    with pytest.raises(InvalidRequest) as refused:
        parse_request_for(settings, with_(image="docker.io/library/redis:7", credentialArn=elsewhere))
    assert "region us-west-2" in refused.value.problems["credentialArn"]
    with pytest.raises(InvalidRequest) as other_account:
        parse_request_for(
            settings, with_(image="docker.io/library/redis:7", credentialArn=SECRET.replace("111122223333", "4" * 12))
        )
    assert "account 111122223333" in other_account.value.problems["credentialArn"]
    arm = settings.model_copy(update={"fargate_platforms": "linux/amd64,linux/arm64"})
    assert parse_request_for(arm, with_(platform="linux/arm64")).platform == "linux/arm64"


def test_a_steps_event_is_read_in_the_stacks_region_and_account() -> None:
    request = with_(image="docker.io/library/redis:7", credentialArn=SECRET)
    RequestEvent.parse({"request": request}, region="us-west-2", account="111122223333")
    with pytest.raises(InvalidRequest) as region:
        RequestEvent.parse({"request": request}, region="eu-west-1", account="111122223333")
    assert "region eu-west-1" in region.value.problems["request.credentialArn"]
    with pytest.raises(InvalidRequest) as account:
        RequestEvent.parse({"request": request}, region="us-west-2", account="444455556666")
    assert "account 444455556666" in account.value.problems["request.credentialArn"]


def test_a_result_is_json_with_dates_as_text() -> None:
    from datetime import UTC, datetime

    applied = AppliedApp(
        namespace="fargate",
        name="demo-app",
        objects=[],
        namespace_created=False,
        applied_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert applied.to_json()["appliedAt"] == "2025-01-01T00:00:00Z"


def test_a_step_event_that_is_no_object_is_the_requests_problem() -> None:
    # A problem with no field (the event itself) is the request's, not an empty name
    with pytest.raises(InvalidRequest) as refused:
        RequestEvent.parse(["not", "an", "event"], region="us-west-2", account="111122223333")
    assert refused.value.problems == {"request": "Input should be a valid dictionary or instance of RequestEvent"}
