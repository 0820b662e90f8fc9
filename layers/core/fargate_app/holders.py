"""Who holds the shared resources: one DynamoDB item per pod execution role, Fargate profile and cache rule
(template.yaml ``HoldersTable``) with the set of apps using it.

Apps share what is costly or limited: one pod execution role per cluster, a Fargate profile per namespace (or one
per cluster), a cache rule per upstream. An app *takes* each in the step that ensures it, before it reads or
creates it, and *releases* it when it is torn down, when its first provision fails, or when an update moved it to
another profile. A resource is deleted only when its holder set is empty at that moment:

- ``take`` adds the app to the set, refused (``SharedResourceReleasing``, retried by the state machine) while a
  release holds the resource's *claim*;
- a release removes the app, then *claims* the resource, which succeeds only while the set is empty; it deletes the
  resource and ends the claim. A take that came first keeps the resource (the claim fails); one that comes later
  waits for the claim, then finds the resource gone or going (DELETING) and makes it anew.

Each is one conditional UpdateItem, atomic in DynamoDB, so no transaction is needed: no write spans two items. A
claim older than ``CLAIM_EXPIRES`` is abandoned (its Lambda invocation cannot still be running) and no longer blocks
a take.

Item attributes: ``resource`` (key: ``podExecutionRole/<name>``, ``fargateProfile/<cluster>/<name>``,
``cacheRule/<prefix>``), ``holders`` (string set of ``cluster/namespace/app``; DynamoDB removes an empty set),
``claimedBy`` and ``claimedAt`` (the releasing execution, epoch seconds) and ``updatedAt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from fargate_app.aws.clients import client
from fargate_app.aws.errors import error_code, translate
from fargate_app.config import Settings
from fargate_app.errors import FargateAppError, Misconfigured, SharedResourceReleasing

# Lambda's longest timeout (900 s, Lambda developer guide, "Configure Lambda function timeout"): a claim older than
# that outlived the invocation that made it.
CLAIM_EXPIRES_SECONDS = 900


class HoldersMisconfigured(Misconfigured):
    """The function's environment names no holders table: a deployment fault."""


def role_resource(name: str) -> str:
    return f"podExecutionRole/{name}"


def profile_resource(cluster: str, name: str) -> str:
    return f"fargateProfile/{cluster}/{name}"


def rule_resource(prefix: str) -> str:
    return f"cacheRule/{prefix}"


def _table(settings: Settings) -> str:
    if not settings.holders_table_name:
        raise HoldersMisconfigured("the function's environment is incomplete: HOLDERS_TABLE_NAME: Field required")
    return settings.holders_table_name


def _holders(item: dict[str, object] | None) -> list[str]:
    values = (item or {}).get("holders") or {}
    return sorted(values.get("SS", []) if isinstance(values, dict) else [])


def take(settings: Settings, resource: str, holder: str) -> bool:
    """Add ``holder`` to the resource's set (idempotent: a retried step takes it again harmlessly); False when it
    held it already (an update of the app, a retried step), so a failure after the take must not release it.

    Raises:
        SharedResourceReleasing: a release is deleting it right now; retry, then make it anew.
        AwsThrottled, PermanentError: DynamoDB refused (translated).
    """
    table = _table(settings)
    now = int(time.time())
    try:
        answer = client("dynamodb").update_item(
            TableName=table,
            Key={"resource": {"S": resource}},
            UpdateExpression="ADD holders :holder SET updatedAt = :now",
            ConditionExpression="attribute_not_exists(claimedBy) OR claimedAt < :expired",
            ExpressionAttributeValues={
                ":holder": {"SS": [holder]},
                ":now": {"N": str(now)},
                ":expired": {"N": str(now - CLAIM_EXPIRES_SECONDS)},
            },
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise SharedResourceReleasing(
                f"{resource} is being deleted by the release of its last holder; it is taken (or made anew) once "
                "that is done"
            ) from exc
        raise translate(exc, f"take {resource} for app {holder} in {table}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"take {resource} for app {holder} in {table}") from exc
    return holder not in _holders(answer.get("Attributes"))


@contextmanager
def taken(settings: Settings, resource: str, holder: str | None) -> Iterator[None]:
    """Take the resource for ``holder`` (None: no bookkeeping) around the block that reads or makes it; a failure in
    the block releases it again unless the holder held it before (an update keeps what its running revision uses).

    Raises:
        SharedResourceReleasing, AwsThrottled, PermanentError: as ``take``; whatever the block raises.
    """
    if holder is None:
        yield
        return
    newly = take(settings, resource, holder)
    try:
        yield
    except FargateAppError:
        if newly:
            release(settings, resource, holder)
        raise


def release(settings: Settings, resource: str, holder: str) -> list[str]:
    """Remove ``holder`` from the resource's set (idempotent); the holders left.

    Raises:
        AwsThrottled, PermanentError: DynamoDB refused (translated).
    """
    table = _table(settings)
    try:
        answer = client("dynamodb").update_item(
            TableName=table,
            Key={"resource": {"S": resource}},
            UpdateExpression="DELETE holders :holder SET updatedAt = :now",
            ExpressionAttributeValues={":holder": {"SS": [holder]}, ":now": {"N": str(int(time.time()))}},
            ReturnValues="ALL_NEW",
        )
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, f"release {resource} for app {holder} in {table}") from exc
    return _holders(answer.get("Attributes"))


@dataclass
class Release:
    """What releasing a resource did: ``deleted`` it (the set was empty and the claim ours), or kept it for
    ``holders`` (empty when it was kept for another reason, given by the caller)."""

    deleted: bool = False
    holders: list[str] = field(default_factory=list)


def release_and_delete(
    settings: Settings, resource: str, holder: str, claimant: str, delete: Callable[[], object] | None
) -> Release:
    """Release the resource and, with ``delete`` (the caller may delete it), delete it if nothing holds it any more.

    ``claimant`` names the releasing execution: a retry of the same step finds its own claim and goes on.

    Raises:
        AwsThrottled, PermanentError: DynamoDB refused (translated); whatever ``delete`` raises (the claim is ended
        first, so the step's retry claims again).
    """
    left = release(settings, resource, holder)
    if left or delete is None:
        return Release(holders=left)
    taken_meanwhile = _claim(settings, resource, claimant)
    if taken_meanwhile is not None:
        return Release(holders=taken_meanwhile)
    try:
        delete()
    finally:
        _end_claim(settings, resource, claimant)
    return Release(deleted=True)


def _claim(settings: Settings, resource: str, claimant: str) -> list[str] | None:
    """Claim the resource for deletion while its set is empty: None when claimed, else its holders now."""
    table = _table(settings)
    now = int(time.time())
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key={"resource": {"S": resource}},
            UpdateExpression="SET claimedBy = :me, claimedAt = :now, updatedAt = :now",
            ConditionExpression=(
                "attribute_not_exists(holders) AND "
                "(attribute_not_exists(claimedBy) OR claimedBy = :me OR claimedAt < :expired)"
            ),
            ExpressionAttributeValues={
                ":me": {"S": claimant},
                ":now": {"N": str(now)},
                ":expired": {"N": str(now - CLAIM_EXPIRES_SECONDS)},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            old = exc.response.get("Item")  # ReturnValuesOnConditionCheckFailure: the item as the condition saw it
            return _holders(old if isinstance(old, dict) else None) or ["a release in progress"]
        raise translate(exc, f"claim {resource} for deletion in {table}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"claim {resource} for deletion in {table}") from exc
    return None


def _end_claim(settings: Settings, resource: str, claimant: str) -> None:
    table = _table(settings)
    try:
        client("dynamodb").update_item(
            TableName=table,
            Key={"resource": {"S": resource}},
            UpdateExpression="REMOVE claimedBy, claimedAt",
            ConditionExpression="claimedBy = :me",
            ExpressionAttributeValues={":me": {"S": claimant}},
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":  # expired and taken over: not ours to end
            raise translate(exc, f"end the claim on {resource} in {table}") from exc
    except BotoCoreError as exc:
        raise translate(exc, f"end the claim on {resource} in {table}") from exc
