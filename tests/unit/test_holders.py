"""The holder sets of the shared role, profiles and cache rules (fargate_app/holders.py) against moto's DynamoDB: a
resource is deleted only when no app holds it at that moment, and a take never meets a half-deleted resource."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from project_template import HOLDERS_TABLE_NAME
from unit_support import holders_of

from fargate_app import holders
from fargate_app.aws.clients import client
from fargate_app.config import Settings
from fargate_app.errors import AwsThrottled, KubernetesUnavailable, ProfileCreateFailed, SharedResourceReleasing
from fargate_app.holders import CLAIM_EXPIRES_SECONDS, release, release_and_delete, take, taken

pytestmark = pytest.mark.usefixtures("aws")
RULE = "cacheRule/ecr-public"


def item(resource: str = RULE) -> dict[str, object]:
    answer = boto3.client("dynamodb").get_item(TableName=HOLDERS_TABLE_NAME, Key={"resource": {"S": resource}})
    return dict(answer.get("Item", {}))


def test_takes_are_idempotent_and_a_release_says_who_is_left(settings: Settings) -> None:
    assert take(settings, RULE, "blog/fargate/web") is True
    assert take(settings, RULE, "blog/fargate/web") is False  # a retried step, or an update: held already
    take(settings, RULE, "blog/team-a/api")
    assert holders_of(RULE) == ["blog/fargate/web", "blog/team-a/api"]
    assert release(settings, RULE, "blog/fargate/web") == ["blog/team-a/api"]
    assert release(settings, RULE, "blog/fargate/web") == ["blog/team-a/api"]  # idempotent
    assert release(settings, RULE, "blog/team-a/api") == []


def test_the_last_holder_deletes_and_ends_its_claim(settings: Settings) -> None:
    take(settings, RULE, "blog/fargate/web")
    deleted: list[str] = []
    released = release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", lambda: deleted.append(RULE))
    assert (released.deleted, released.holders, deleted) == (True, [], [RULE])
    assert "claimedBy" not in item()
    # and the next app takes it again (it finds the resource gone and makes it anew)
    assert take(settings, RULE, "blog/fargate/api") is True


def test_a_holder_left_keeps_the_resource(settings: Settings) -> None:
    take(settings, RULE, "blog/fargate/web")
    take(settings, RULE, "blog/fargate/api")
    deleted: list[str] = []
    released = release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", lambda: deleted.append(RULE))
    assert (released.deleted, released.holders, deleted) == (False, ["blog/fargate/api"], [])


def test_a_take_while_the_last_holder_deletes_waits_for_the_claim(settings: Settings) -> None:
    # Given the last holder's release has claimed the resource and is deleting it
    take(settings, RULE, "blog/fargate/web")
    refused: list[Exception] = []

    def delete() -> None:
        # When another app takes it meanwhile, then it is refused with a retryable error, holding nothing
        try:
            take(settings, RULE, "blog/fargate/api")
        except SharedResourceReleasing as exc:
            refused.append(exc)

    assert release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", delete).deleted is True
    assert len(refused) == 1 and "is being deleted" in str(refused[0])
    assert holders_of(RULE) == []
    # and once the claim ended, the take goes through
    assert take(settings, RULE, "blog/fargate/api") is True


def test_an_abandoned_claim_does_not_block_takes(settings: Settings) -> None:
    # Given a claim whose release died (its Lambda invocation timed out) longer ago than any invocation can run
    stale = int(time.time()) - CLAIM_EXPIRES_SECONDS - 1
    boto3.client("dynamodb").put_item(
        TableName=HOLDERS_TABLE_NAME,
        Item={"resource": {"S": RULE}, "claimedBy": {"S": "exec-dead"}, "claimedAt": {"N": str(stale)}},
    )
    # When an app takes the resource, then it holds it
    assert take(settings, RULE, "blog/fargate/web") is True
    # and a fresh claim by someone else does block
    release(settings, RULE, "blog/fargate/web")
    holders._claim(settings, RULE, "exec-2")
    with pytest.raises(SharedResourceReleasing):
        take(settings, RULE, "blog/fargate/web")


def test_a_take_between_the_release_and_the_claim_keeps_the_resource(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the last holder lets go, and another app takes the resource right after (before the claim)
    take(settings, RULE, "blog/fargate/web")
    released = holders.release

    def then_another_takes(settings: Settings, resource: str, holder: str) -> list[str]:
        left = released(settings, resource, holder)
        take(settings, resource, "blog/fargate/api")
        return left

    monkeypatch.setattr(holders, "release", then_another_takes)
    deleted: list[str] = []
    # When the release goes on to claim it, then the claim fails and nothing is deleted
    outcome = release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", lambda: deleted.append(RULE))
    assert (outcome.deleted, outcome.holders, deleted) == (False, ["blog/fargate/api"], [])
    assert "claimedBy" not in item()


def test_a_delete_that_fails_ends_the_claim_and_a_retry_claims_again(settings: Settings) -> None:
    take(settings, RULE, "blog/fargate/web")

    def unavailable() -> None:
        raise KubernetesUnavailable("503")

    with pytest.raises(KubernetesUnavailable):
        release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", unavailable)
    assert "claimedBy" not in item()
    assert release_and_delete(settings, RULE, "blog/fargate/web", "exec-1", lambda: None).deleted is True


def test_a_failure_inside_taken_lets_go_only_of_what_was_newly_taken(settings: Settings) -> None:
    # A first provision whose step fails after the take lets go of it
    with pytest.raises(ProfileCreateFailed), taken(settings, RULE, "blog/fargate/web"):
        raise ProfileCreateFailed("selectors do not match")
    assert holders_of(RULE) == []
    # an update (the app held it already) keeps holding it
    take(settings, RULE, "blog/fargate/web")
    with pytest.raises(ProfileCreateFailed), taken(settings, RULE, "blog/fargate/web"):
        raise ProfileCreateFailed("selectors do not match")
    assert holders_of(RULE) == ["blog/fargate/web"]


def test_without_the_tables_name_the_step_says_so(settings: Settings) -> None:
    without = settings.model_copy(update={"holders_table_name": None})
    with pytest.raises(holders.HoldersMisconfigured, match="HOLDERS_TABLE_NAME"):
        take(without, RULE, "blog/fargate/web")


def test_each_write_stamps_the_time_it_was_made(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a clock at a known second
    monkeypatch.setattr(holders.time, "time", lambda: 1_800_000_000.5)
    # When the resource is taken, then released, then claimed, each write records that second
    take(settings, RULE, "blog/fargate/web")
    assert item()["updatedAt"] == {"N": "1800000000"}
    monkeypatch.setattr(holders.time, "time", lambda: 1_800_000_100.0)
    release(settings, RULE, "blog/fargate/web")
    assert item()["updatedAt"] == {"N": "1800000100"}
    monkeypatch.setattr(holders.time, "time", lambda: 1_800_000_200.0)
    holders._claim(settings, RULE, "exec-1")
    assert (item()["claimedAt"], item()["updatedAt"], item()["claimedBy"]) == (
        {"N": "1800000200"},
        {"N": "1800000200"},
        {"S": "exec-1"},
    )


def test_a_live_claim_keeps_another_release_from_deleting_until_it_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an execution's release has claimed the empty resource at a known second
    claimed_at = 1_800_000_000
    monkeypatch.setattr(holders.time, "time", lambda: claimed_at)
    take(settings, RULE, "blog/fargate/web")
    release(settings, RULE, "blog/fargate/web")
    assert holders._claim(settings, RULE, "exec-1") is None
    # When another execution releases it 899 s later (the first may still be running), then it keeps the resource
    monkeypatch.setattr(holders.time, "time", lambda: claimed_at + CLAIM_EXPIRES_SECONDS - 1)
    deleted: list[str] = []
    outcome = release_and_delete(settings, RULE, "blog/fargate/api", "exec-2", lambda: deleted.append(RULE))
    assert (outcome.deleted, outcome.holders, deleted) == (False, ["a release in progress"], [])
    # while the claiming execution's own retry goes on with its claim (claimed anew at that second)
    assert holders._claim(settings, RULE, "exec-1") is None
    # and once the claim is older than any Lambda invocation runs, another release takes it over and deletes
    monkeypatch.setattr(holders.time, "time", lambda: claimed_at + 2 * CLAIM_EXPIRES_SECONDS)
    outcome = release_and_delete(settings, RULE, "blog/fargate/api", "exec-2", lambda: deleted.append(RULE))
    assert (outcome.deleted, deleted) == (True, [RULE])


def test_ending_a_claim_another_release_took_over_leaves_it_alone(settings: Settings) -> None:
    # Given exec-2 holds the claim (it took over exec-1's expired one)
    holders._claim(settings, RULE, "exec-2")
    # When exec-1 ends what it thinks is its claim, then nothing is raised and exec-2 keeps it
    holders._end_claim(settings, RULE, "exec-1")
    assert item()["claimedBy"] == {"S": "exec-2"}


def test_a_resource_being_released_refuses_a_take_in_words(settings: Settings) -> None:
    holders._claim(settings, RULE, "exec-1")
    with pytest.raises(SharedResourceReleasing) as refused:
        take(settings, RULE, "blog/fargate/web")
    assert str(refused.value) == (
        f"{RULE} is being deleted by the release of its last holder; it is taken (or made anew) once that is done"
    )


def test_without_the_tables_name_the_error_names_the_variable(settings: Settings) -> None:
    without = settings.model_copy(update={"holders_table_name": None})
    with pytest.raises(holders.HoldersMisconfigured) as refused:
        release(without, RULE, "blog/fargate/web")
    assert str(refused.value) == "the function's environment is incomplete: HOLDERS_TABLE_NAME: Field required"


WRITES = {
    # the start of each write's UpdateExpression, the write, and how its failure names what it was doing
    "ADD": (lambda s: take(s, RULE, "blog/fargate/web"), f"take {RULE} for app blog/fargate/web"),
    "DELETE": (lambda s: release(s, RULE, "blog/fargate/web"), f"release {RULE} for app blog/fargate/web"),
    "SET claimedBy": (lambda s: holders._claim(s, RULE, "exec-1"), f"claim {RULE} for deletion"),
    "REMOVE": (lambda s: holders._end_claim(s, RULE, "exec-1"), f"end the claim on {RULE}"),
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize(
    ("failure", "error", "says"),
    [
        (
            "ThrottlingException",
            AwsThrottled,
            ": AWS answered ThrottlingException after retries; the step will be retried",
        ),
        ("no answer", AwsThrottled, ": the AWS endpoint did not answer (EndpointConnectionError); will retry"),
    ],
)
def test_dynamodb_failing_a_write_is_the_named_error_of_that_write(
    settings: Settings, write: str, failure: str, error: type[Exception], says: str
) -> None:
    # Given DynamoDB failing the one write (throttled past the SDK's retries, or not answering at all)
    dynamodb = client("dynamodb")

    def fail(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if not json.loads(params["body"])["UpdateExpression"].startswith(write):
            return None
        if failure == "no answer":
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-west-2.amazonaws.com")
        http = type("HttpResponse", (), {"status_code": 400})()
        return http, {
            "Error": {"Code": failure, "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", fail)
    operation, action = WRITES[write]
    try:
        # When it is made, then the step fails with the error the state machine retries, naming the write and table
        with pytest.raises(error) as failed:
            operation(settings)
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", fail)
    assert str(failed.value) == f"{action} in {HOLDERS_TABLE_NAME}{says}"
