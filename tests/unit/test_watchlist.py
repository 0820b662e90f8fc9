"""ValidateCacheRule: the CloudTrail event of a new rule is validated and its upstream's watch list read."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fargate_app import watchlist
from fargate_app.errors import AccessDenied, InvalidRequest, PermanentError, UpstreamCredentialInvalid
from fargate_app.watchlist import ValidateCacheRuleEvent, validate_cache_rule

pytestmark = pytest.mark.usefixtures("aws")
PARAMETER = "/fargate-app-provisioner/watch-list"


def cloudtrail_event(prefix: str = "ecr-public", upstream: str = "public.ecr.aws") -> dict[str, Any]:
    """The EventBridge event CloudTrail sends for CreatePullThroughCacheRule (CloudTrail record, trimmed)."""
    return {
        "version": "0",
        "source": "aws.ecr",
        "detail-type": "AWS API Call via CloudTrail",
        "account": "111122223333",
        "region": "us-west-2",
        "detail": {
            "eventVersion": "1.08",
            "eventSource": "ecr.amazonaws.com",
            "eventName": "CreatePullThroughCacheRule",
            "awsRegion": "us-west-2",
            "requestParameters": {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": upstream},
            "responseElements": {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": upstream},
        },
    }


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("ecr", region_name="us-west-2")
    stubber = Stubber(client)
    stubber.activate()
    real = __import__("fargate_app.aws.clients", fromlist=["client"]).client
    monkeypatch.setattr("fargate_app.watchlist.client", lambda service: client if service == "ecr" else real(service))
    return stubber


def valid(stubber: Stubber, prefix: str = "ecr-public", upstream: str = "public.ecr.aws", ok: bool = True) -> None:
    answer = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": upstream,
        "isValid": ok,
        "registryId": "111122223333",
    }
    if not ok:
        answer["failure"] = "Unable to authenticate with the upstream registry"
    stubber.add_response("validate_pull_through_cache_rule", answer, {"ecrRepositoryPrefix": prefix})


def test_watched_images_of_the_upstream_become_items(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    watched = {"public.ecr.aws": ["nginx/nginx:stable", "eks-distro/kubernetes/pause:3.9"], "quay.io": ["x/y:1"]}
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value=json.dumps(watched))
    valid(ecr)
    result = validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert [i.to_json() for i in result.images] == [
        {"image": "public.ecr.aws/nginx/nginx:stable", "cachePrefix": "ecr-public", "platform": "linux/amd64"},
        {
            "image": "public.ecr.aws/eks-distro/kubernetes/pause:3.9",
            "cachePrefix": "ecr-public",
            "platform": "linux/amd64",
        },
    ]


def test_docker_hub_images_normalise_like_docker(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    boto3.client("ssm").put_parameter(
        Name=PARAMETER, Type="String", Value=json.dumps({"registry-1.docker.io": ["redis:7"]})
    )
    valid(ecr, "docker-hub", "registry-1.docker.io")
    result = validate_cache_rule(
        ValidateCacheRuleEvent.model_validate(cloudtrail_event("docker-hub", "registry-1.docker.io"))
    )
    assert [i.image for i in result.images] == ["docker.io/library/redis:7"]


def test_no_watch_list_is_success_with_nothing_to_warm(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)  # the parameter does not exist
    valid(ecr)
    assert validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event())).images == []


def test_an_invalid_rule_stops_the_workflow(ecr: Stubber) -> None:
    valid(ecr, ok=False)
    with pytest.raises(UpstreamCredentialInvalid, match="Unable to authenticate"):
        validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))


def test_a_malformed_watch_list_is_named(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value='["nginx"]')
    valid(ecr)
    with pytest.raises(InvalidRequest, match=PARAMETER):
        validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))


def test_only_the_create_event_is_accepted() -> None:
    event = cloudtrail_event()
    event["detail"]["eventName"] = "DeletePullThroughCacheRule"
    with pytest.raises(ValueError, match="eventName"):
        ValidateCacheRuleEvent.model_validate(event)


def test_without_the_parameter_setting_nothing_is_read(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a watch list in SSM, but the stack names no parameter
    monkeypatch.delenv("WATCH_LIST_PARAMETER", raising=False)
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value=json.dumps({"public.ecr.aws": ["a/b:1"]}))
    valid(ecr)
    reads: list[str] = []
    ecr_only = watchlist.client
    monkeypatch.setattr("fargate_app.watchlist.client", lambda service: reads.append(service) or ecr_only(service))
    assert validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event())).images == []
    assert reads == ["ecr"]


def test_a_watch_list_without_the_rules_upstream_warms_nothing(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value=json.dumps({"quay.io": ["x/y:1"]}))
    valid(ecr)
    result = validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert (result.images, result.skipped) == ([], [])


def test_refusals_name_the_rule_or_the_parameter(ecr: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    # ECR refusing the validation names the rule
    ecr.add_client_error("validate_pull_through_cache_rule", "ValidationException", "bad prefix")
    with pytest.raises(PermanentError) as refused:
        validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert refused.value.message == "validate ECR pull-through-cache rule 'ecr-public': ValidationException: bad prefix"

    # SSM refusing the watch list's read names the parameter
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    ssm = boto3.client("ssm", region_name="us-west-2")
    ecr_only = watchlist.client
    monkeypatch.setattr("fargate_app.watchlist.client", lambda service: ssm if service == "ssm" else ecr_only(service))
    valid(ecr)
    with Stubber(ssm) as stubbed_ssm:
        stubbed_ssm.add_client_error("get_parameter", "AccessDeniedException", "not authorized to GetParameter")
        with pytest.raises(AccessDenied) as denied:
            validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert denied.value.message.startswith(f"read SSM parameter {PARAMETER}: not authorized to GetParameter")


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ('["nginx"]', "must map an upstream registry URL to a list of images"),
        ('{"public.ecr.aws": "nginx/nginx:stable"}', "must map an upstream registry URL to a list of images"),
    ],
)
def test_a_malformed_watch_list_names_the_parameter_and_the_rule(
    ecr: Stubber, monkeypatch: pytest.MonkeyPatch, value: str, rule: str
) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value=value)
    valid(ecr)
    with pytest.raises(InvalidRequest) as refused:
        validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert refused.value.problems == {f"SSM parameter {PARAMETER}": rule}


def test_an_image_that_is_no_reference_is_skipped_with_the_reason(
    ecr: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCH_LIST_PARAMETER", PARAMETER)
    watched = {"public.ecr.aws": ["Bad//Name:x", "nginx/nginx:stable"]}  # the images after a bad one still count
    boto3.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value=json.dumps(watched))
    valid(ecr)
    result = validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert [i.image for i in result.images] == ["public.ecr.aws/nginx/nginx:stable"]
    assert len(result.skipped) == 1 and result.skipped[0].startswith("Bad//Name:x: ")
    assert result.rule.ecr_repository_prefix == "ecr-public"


def test_an_invalid_rule_without_a_reason_says_so(ecr: Stubber) -> None:
    ecr.add_response(
        "validate_pull_through_cache_rule",
        {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "public.ecr.aws", "isValid": False},
        {"ecrRepositoryPrefix": "ecr-public"},
    )
    with pytest.raises(UpstreamCredentialInvalid) as refused:
        validate_cache_rule(ValidateCacheRuleEvent.model_validate(cloudtrail_event()))
    assert str(refused.value) == (
        "pull-through-cache rule 'ecr-public' for public.ecr.aws is not valid: no reason given"
    )
