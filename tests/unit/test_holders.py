"""The holder sets of the shared role, profiles and cache rules (fargate_app/holders.py) against moto's DynamoDB: a
resource is deleted only when no app holds it at that moment, and a take never meets a half-deleted resource."""

from __future__ import annotations

import time

import boto3
import pytest
from project_template import HOLDERS_TABLE_NAME
from unit_support import holders_of

from fargate_app import holders
from fargate_app.config import Settings
from fargate_app.errors import KubernetesUnavailable, ProfileCreateFailed, SharedResourceReleasing
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
