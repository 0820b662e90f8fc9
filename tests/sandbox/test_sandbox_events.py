"""A successful CreatePullThroughCacheRule emits the CloudTrail event; rules' patterns decide who receives it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_test_support import unique

from fargate_sandbox.events import cloudtrail_event
from fargate_sandbox.sandbox import Sandbox

# The pattern the warm_cache workflow's EventBridge rule uses (docs/design.md §1): CloudTrail's CreatePullThroughCacheRule.
CREATE_RULE_PATTERN = {
    "source": ["aws.ecr"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["ecr.amazonaws.com"], "eventName": ["CreatePullThroughCacheRule"]},
}


def test_create_rule_event_reaches_only_the_matching_rule(sandbox: Sandbox) -> None:
    # Given a rule for CreatePullThroughCacheRule and rules for other calls, each with a recorder target
    received: dict[str, list[dict[str, Any]]] = {"create": [], "delete": [], "eks": []}
    tag = unique("ev")
    sandbox.events.add_rule(f"{tag}-create", CREATE_RULE_PATTERN, received["create"].append)
    delete_pattern = {**CREATE_RULE_PATTERN, "detail": {"eventName": ["DeletePullThroughCacheRule"]}}
    sandbox.events.add_rule(f"{tag}-delete", delete_pattern, received["delete"].append)
    sandbox.events.add_rule(f"{tag}-eks", {"source": ["aws.eks"]}, received["eks"].append)
    # When a rule is created and then deleted through the ECR API
    ecr = sandbox.boto3_client("ecr")
    prefix = unique("evt")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
    # Then exactly one CloudTrail-shaped event reached the create rule and none the others
    mine = [e for e in received["create"] if e["detail"]["requestParameters"]["ecrRepositoryPrefix"] == prefix]
    assert len(mine) == 1
    assert not received["delete"] and not received["eks"]
    event = mine[0]
    assert event["source"] == "aws.ecr" and event["detail-type"] == "AWS API Call via CloudTrail"
    assert event["account"] == "111122223333" and event["region"] == "us-west-2"
    detail = event["detail"]
    assert detail["eventSource"] == "ecr.amazonaws.com" and detail["eventName"] == "CreatePullThroughCacheRule"
    assert detail["awsRegion"] == "us-west-2" and detail["eventType"] == "AwsApiCall"
    assert detail["requestParameters"] == {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": "quay.io"}
    assert detail["responseElements"]["upstreamRegistry"] == "quay"


def test_failed_create_emits_nothing(sandbox: Sandbox) -> None:
    # Given a recorder on the create pattern
    received: list[dict[str, Any]] = []
    sandbox.events.add_rule(unique("fail"), CREATE_RULE_PATTERN, received.append)
    # When the create call fails (unsupported upstream)
    ecr = sandbox.boto3_client("ecr")
    prefix = unique("f")
    with pytest.raises(ClientError) as refused:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="harbor.example.com")
    # Then it really failed, so CloudTrail records no successful call and no event is delivered
    assert refused.value.response["Error"]["Code"] == "UnsupportedUpstreamRegistryException"
    assert prefix not in [
        r["ecrRepositoryPrefix"] for r in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    ]
    assert received == []


def test_an_event_is_on_its_way_from_the_answer_until_its_target_ran(sandbox: Sandbox) -> None:
    # Given a rule whose target is held until released, as a StartExecution that takes its time
    release, reached = threading.Event(), threading.Event()
    received: list[str] = []

    def held(event: dict[str, Any]) -> None:
        reached.set()
        release.wait(10)
        received.append(event["detail"]["requestParameters"]["ecrRepositoryPrefix"])

    prefix = unique("way")
    pattern = {
        **CREATE_RULE_PATTERN,
        "detail": {**CREATE_RULE_PATTERN["detail"], "requestParameters": {"ecrRepositoryPrefix": [prefix]}},
    }
    sandbox.events.add_rule(unique("held"), pattern, held)
    # When a rule is created: the caller has its answer while the event's target still runs
    ecr = sandbox.boto3_client("ecr")
    thread = threading.Thread(
        target=ecr.create_pull_through_cache_rule,
        kwargs={"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": "quay.io"},
    )
    thread.start()
    assert reached.wait(10)
    thread.join(10)
    assert not thread.is_alive()
    # Then waiting for the deliveries does not end before the target ran, and ends once it has
    assert sandbox.events.wait_delivered(timeout_s=0.2) is False
    release.set()
    assert sandbox.events.wait_delivered(timeout_s=10) is True
    assert received == [prefix]
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)


def test_pattern_matching_is_eventbridge_semantics(sandbox: Sandbox) -> None:
    # Given an event of another service and a prefix-matching pattern
    other = cloudtrail_event(
        service="eks",
        event_name="CreateFargateProfile",
        account_id="111122223333",
        region="us-west-2",
        request_parameters={},
        response_elements={},
    )
    tag = unique("m")
    sandbox.events.add_rule(f"{tag}-prefix", {"detail": {"eventName": [{"prefix": "CreateF"}]}}, lambda _e: None)
    sandbox.events.add_rule(f"{tag}-ecr", CREATE_RULE_PATTERN, lambda _e: None)
    # Then the EKS event matches the prefix rule, not the ECR rule
    matched = [name for name in sandbox.events.matching_rules(other) if name.startswith(tag)]
    assert matched == [f"{tag}-prefix"]
