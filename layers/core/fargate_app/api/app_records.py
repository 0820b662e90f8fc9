"""The API's reads of the app inventory (``fargate_app.inventory``): one app's status, and the list of apps.

One app costs one GetItem, plus one GetExecutionHistory while its execution runs (the state it is in, and whether
it ended without recording it: aborted, timed out, or a record that failed for good), whatever the length of the
app's history; an execution that ended between the two reads costs one more, of how it ended. The list is one Query
of an index per page, newest first.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from fargate_app.api.executions import (
    MAX_CAUSE,
    SUCCEEDED,
    AppRef,
    closed_error,
)
from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.stepfunctions import describe_execution, execution_tail
from fargate_app.config import Settings
from fargate_app.errors import InvalidRequest, truncate
from fargate_app.inventory import LISTING, app_key, plain, read_item, table_name

MAX_PAGE = 100
DEFAULT_PAGE = 50
# index → its partition key attribute (template.yaml AppsTable); every index sorts by updatedAt.
INDEX_KEYS = {"ByUpdate": "listing", "ByCluster": "clusterName", "ByNamespace": "clusterNamespace"}


def _iso(text: Any) -> str | None:
    """A Step Functions timestamp as the API writes dates (ISO 8601 with its offset)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).isoformat()
    except ValueError:
        return str(text)


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def app_record(settings: Settings, app: AppRef) -> dict[str, Any] | None:
    """GET /apps/{cluster}/{namespace}/{app}: the app's status document from its inventory item, or None when the
    inventory has no item for it. The app's execution is the one the API noted last, until it records itself
    (while ValidateRequest runs, or for good when it refused the request), else the one the item records.

    Raises:
        InventoryMisconfigured: no table is configured.
        AwsThrottled, PermanentError: DynamoDB or Step Functions refused (translated).
    """
    key = app_key(app.cluster, app.namespace, app.app)
    item = read_item(settings, key)
    if item is None:
        return None
    document = _document(item)
    if document["status"] != "RUNNING":
        return document
    arn, kind = document["executionArn"], document["kind"]
    tail = execution_tail(arn)
    if tail is None:  # Step Functions no longer knows it (expired): what the item says is all there is
        return document
    if tail.ended is None:
        return {**document, "currentState": tail.current_state}
    # It ended after the item was read. Its last state records how, with the app's state, in the item: read again,
    # the item answers as a GET a moment later would (else a teardown's SUCCEEDED beside the TEARING_DOWN it had
    # before its last state). Only an execution that ended without recording it (aborted, timed out, refused, its
    # record failed) is described: the end Step Functions knows beside the state the item keeps.
    fresh = read_item(settings, key)
    if fresh is not None:
        recorded = _document(fresh)
        if recorded["executionArn"] == arn and recorded["status"] != "RUNNING":
            return recorded
    return {**document, "currentState": tail.current_state, **_ended(arn, kind)}


def _document(item: dict[str, Any]) -> dict[str, Any]:
    """The status document an item gives (``currentState`` None: only the execution's history knows it)."""
    pending = item.get("pendingExecution")
    if pending and pending != item.get("executionArn"):
        arn, kind, caller, start_attribute = (
            str(pending),
            item.get("pendingKind"),
            item.get("pendingCaller"),
            "pendingStart",
        )
        status, stopped, result, error = "RUNNING", None, None, None
    else:
        arn, kind, caller, start_attribute = (
            str(item.get("executionArn", "")),
            item.get("kind"),
            item.get("caller"),
            "startDate",
        )
        status, stopped, failure = (
            str(item.get("executionStatus", "RUNNING")),
            item.get("stopDate"),
            item.get("failure"),
        )
        result = _json(item.get("resultJson")) if status == SUCCEEDED else None
        error = {"error": failure["error"], "cause": truncate(failure["cause"], MAX_CAUSE)} if failure else None
    return {
        "status": status,
        "kind": str(kind or "provision"),
        "caller": caller or "console",
        "executionArn": arn,
        "executionName": arn.rsplit(":", 1)[-1],
        "startDate": _iso(item.get(start_attribute)),
        "stopDate": _iso(stopped),
        "currentState": None,
        "result": result,
        "error": error,
        **_summary(item),
    }


def _ended(arn: str, kind: str) -> dict[str, Any]:
    """How an execution the item does not know the end of ended, from Step Functions (a third call, only then);
    nothing more than the item says when Step Functions no longer knows it."""
    described = describe_execution(arn)
    if described is None:
        return {}
    status = str(described["status"])
    stopped = described.get("stopDate")
    return {
        "status": status,
        "stopDate": stopped.isoformat() if isinstance(stopped, datetime) else _iso(stopped),
        "result": _json(described.get("output")) if status == SUCCEEDED else None,
        "error": closed_error(described, kind),
    }


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": item.get("clusterName"),
        "namespace": item.get("namespace"),
        "app": item.get("appName"),
        "state": item.get("appState"),
        "revision": item.get("revision"),
        "image": {"requested": item.get("requestedImage"), "cached": item.get("cachedImage")},
        "updatedAt": _iso(item.get("updatedAt")),
    }


def list_apps(
    settings: Settings,
    cluster: str | None = None,
    namespace: str | None = None,
    limit: int = DEFAULT_PAGE,
    next_token: str | None = None,
) -> dict[str, Any]:
    """GET /apps: one page of apps, newest first (every app, a cluster's, or a namespace's of a cluster).

    Raises:
        InvalidRequest: a namespace without its cluster, a limit out of 1..100, a token this listing did not make.
        InventoryMisconfigured, AwsThrottled, PermanentError: as ``app_record``.
    """
    if namespace is not None and cluster is None:
        raise InvalidRequest.of("namespace", "needs cluster: a namespace is listed within its cluster")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest.of("limit", f"must be a whole number from 1 to {MAX_PAGE}")
    if namespace is not None:
        index, value = "ByNamespace", f"{cluster}/{namespace}"
    elif cluster is not None:
        index, value = "ByCluster", cluster
    else:
        index, value = "ByUpdate", LISTING
    key = INDEX_KEYS[index]
    query: dict[str, Any] = {
        "TableName": table_name(settings),
        "IndexName": index,
        "KeyConditionExpression": f"{key} = :key",
        "ExpressionAttributeValues": {":key": {"S": value}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if next_token:
        query["ExclusiveStartKey"] = _start_key(next_token, {"app", key, "updatedAt"})
    with aws_errors(f"list apps of {query['TableName']}"):
        page = client("dynamodb").query(**query)
    last = page.get("LastEvaluatedKey")
    return {
        "apps": [
            {**_summary(item), "executionArn": item.get("executionArn")}
            for item in (plain(raw) for raw in page.get("Items", []))
        ],
        "nextToken": base64.urlsafe_b64encode(json.dumps(last, sort_keys=True).encode()).decode() if last else None,
    }


def _start_key(token: str, attributes: set[str]) -> dict[str, Any]:
    """The page's start, from a token of the same listing (the index's key attributes, each a string).

    Raises:
        InvalidRequest: anything else.
    """
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        key = None
    well_formed = (
        isinstance(key, dict)
        and set(key) == attributes
        and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
    )
    if not well_formed:
        raise InvalidRequest.of("nextToken", "is not a token this listing returned: send the one it gave, unchanged")
    return dict(key)
