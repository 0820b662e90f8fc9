"""The app inventory: one DynamoDB item per app (template.yaml ``AppsTable``), the record the API reads.

The state machines write it through Step Functions' DynamoDB integration (statemachine/*.asl.json, the ``Record…``
states): the start of an execution, and how it ended. ValidateRequest reads it first (``fargate_app.validation.plan_revision``): which
revision this start makes, whether it is an update, and the item's version, which the start's write requires
unchanged (optimistic locking: two starts that read the same version cannot both record themselves).

Item attributes (none is a DynamoDB reserved word, so the ASL's expressions need no aliases):
``app`` (key: cluster/namespace/app), ``clusterName``, ``namespace``, ``appName``, ``clusterNamespace`` and
``listing`` (the keys of the ByCluster, ByNamespace and ByUpdate indexes, each sorted by ``updatedAt``),
``appState``, ``revision``, ``requestHash``, ``requestJson``, ``requestedImage``, ``cachedImage``, ``kind``,
``executionStatus``, ``caller``, ``executionArn``, ``startDate``, ``stopDate``, ``updatedAt``, ``resultJson``,
``failure`` (error, cause), ``lastGood`` (the last good revision: ApplyApp's input of the last successful provision,
and its result) and ``version``. The API adds ``pendingExecution``, ``pendingKind``, ``pendingStart`` and ``pendingCaller`` when it starts an execution
(``note_started``): until that execution records itself, the app's status is that execution's, not the item's older
one. A start's record removes them (a console start after an API one is then the app's newest). The API's note leaves
``version`` alone, so it never defeats a start's lock.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, Literal

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.stepfunctions import still_runs
from fargate_app.config import Settings
from fargate_app.errors import AppBusy, Misconfigured

# The appState values the Lambda steps compute (the ASL writes TEARING_DOWN and TORN_DOWN itself; docs/design.md §5)
PROVISIONING = "PROVISIONING"
UPDATING = "UPDATING"
RUNNING: Final[Literal["RUNNING"]] = "RUNNING"
FAILED: Final[Literal["FAILED"]] = "FAILED"
LISTING = "apps"  # the ByUpdate index's one partition: every app, newest first
EXECUTION_RUNNING = "RUNNING"  # executionStatus from an execution's start record until its end record


class InventoryMisconfigured(Misconfigured):
    """The function's environment names no inventory table: a deployment fault."""


def table_name(settings: Settings) -> str:
    """Raises: InventoryMisconfigured when the function's environment does not name the table."""
    if not settings.apps_table_name:
        raise InventoryMisconfigured("the function's environment is incomplete: APPS_TABLE_NAME: Field required")
    return settings.apps_table_name


def app_key(cluster: str, namespace: str, app: str) -> str:
    return f"{cluster}/{namespace}/{app}"


def canonical_json(document: Any) -> str:
    """One text per JSON value, whatever the order of its keys: what execution names and the request hash digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def request_hash(document: dict[str, Any]) -> str:
    """The desired state's identity: the same request (keys in any order) has the same hash."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed attribute values) as plain Python values (numbers as int)."""
    from boto3.dynamodb.types import TypeDeserializer  # imported on first use: the API's cold start does not pay

    deserializer = TypeDeserializer()
    return {key: _numbers(deserializer.deserialize(value)) for key, value in item.items()}


def _numbers(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_numbers(v) for v in value]
    return value


def read_item(settings: Settings, key: str) -> dict[str, Any] | None:
    """The app's item (a strongly consistent read), or None when the inventory has none.

    Raises:
        InventoryMisconfigured: no table is configured.
        AwsThrottled, PermanentError: DynamoDB refused (translated).
    """
    table = table_name(settings)
    with aws_errors(f"read app {key} from {table}"):
        answer = client("dynamodb").get_item(TableName=table, Key={"app": {"S": key}}, ConsistentRead=True)
    item = answer.get("Item")
    return plain(item) if item else None


def note_started(settings: Settings, key: str, kind: str, execution_arn: str, started: str, caller: str) -> None:
    """Record that the API started ``execution_arn`` for the app (one UpdateItem; creates a bare item if none).

    Raises:
        InventoryMisconfigured, AwsThrottled, PermanentError: as ``read_item``.
    """
    table = table_name(settings)
    with aws_errors(f"note execution {execution_arn} in {table}"):
        client("dynamodb").update_item(
            TableName=table,
            Key={"app": {"S": key}},
            UpdateExpression=(
                "SET pendingExecution = :execution, pendingKind = :kind, pendingStart = :started, pendingCaller = :caller"
            ),
            ExpressionAttributeValues={
                ":execution": {"S": execution_arn},
                ":kind": {"S": kind},
                ":started": {"S": started},
                ":caller": {"S": caller},
            },
        )


def last_good_revision(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item's last good revision as ApplyApp reads it (``previous`` of the provision state: what a failed update
    applies again), or None when the app has none (never provisioned, or torn down since)."""
    recorded = item.get("lastGood")
    if not isinstance(recorded, dict) or not recorded.get("executionArn"):
        return None
    try:
        request = json.loads(str(recorded.get("requestJson") or "null"))
    except ValueError:
        request = None
    rule = (last_good_result(item) or {}).get("cacheRule")
    return {
        "executionArn": recorded["executionArn"],
        "request": request,
        "image": {"cached": recorded.get("cached")},
        "caller": recorded.get("caller") or "console",
        "fargateProfileName": recorded.get("fargateProfileName"),
        # the rule the revision holds: a failed update that took another keeps this one (compensate.py)
        "cacheRulePrefix": rule.get("ecrRepositoryPrefix") if isinstance(rule, dict) else None,
    }


def last_good_result(item: dict[str, Any]) -> dict[str, Any] | None:
    """What the last good revision's provision returned (its output), or None when the item does not keep it."""
    recorded = item.get("lastGood")
    text = recorded.get("resultJson") if isinstance(recorded, dict) else None
    try:
        result = json.loads(str(text)) if text else None
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def refuse_while_another_runs(item: dict[str, Any], execution_arn: str) -> None:
    """Refuse a start while the execution the item records as the app's current one is another and still runs.

    The item alone cannot tell: an execution stopped (StopExecution), timed out, or failed before its end record
    leaves ``executionStatus`` RUNNING, so Step Functions is asked (one DescribeExecution, only then).

    Raises:
        AppBusy: naming the running execution.
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    current = item.get("executionArn")
    if item.get("executionStatus") != EXECUTION_RUNNING or not current or current == execution_arn:
        return
    if still_runs(current):
        kind = item.get("kind") or "provision"
        raise AppBusy(
            f"app {item.get('app')} has a running {kind} execution, {current.rsplit(':', 1)[-1]}: start again once "
            f"it has ended (nothing was created; {current})"
        )
