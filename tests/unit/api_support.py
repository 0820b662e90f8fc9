"""What the API's unit tests share: API Gateway proxy events (from `sam local generate-event`, tests/unit/events) and
moto's executions finished or given a history the way AWS would report them (moto keeps them RUNNING)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from request_edits import walkthrough_request

from fargate_app.aws.clients import client
from fargate_app.inventory import canonical_json
from fargate_app.models import parse_request_for

ACCOUNT, REGION = "111122223333", "us-west-2"
EVENTS = Path(__file__).parent / "events"
PASS_ASL = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
REQUEST = walkthrough_request()
STATUS_URL = "/apps/blog/fargate/demo-app"
CALLER = "arn:aws:sts::111122223333:assumed-role/platform-admin/team-a"  # the events' requestContext.identity.userArn


def post(body: str | bytes | dict[str, Any]) -> dict[str, Any]:
    event = json.loads((EVENTS / "api_post_apps.json").read_text())
    raw = json.dumps(body).encode() if isinstance(body, dict) else body if isinstance(body, bytes) else body.encode()
    event["body"] = base64.b64encode(raw).decode()  # the generated event is base64-encoded; keep it so
    return event


def app_event(method: str, cluster: str = "blog", namespace: str = "fargate", app: str = "demo-app") -> dict[str, Any]:
    event = json.loads((EVENTS / f"api_{method}_app.json").read_text())
    event["path"] = f"/apps/{cluster}/{namespace}/{app}"
    event["pathParameters"] = {"cluster": cluster, "namespace": namespace, "app": app}
    return event


def put(
    body: dict[str, Any], cluster: str = "blog", namespace: str = "fargate", app: str = "demo-app"
) -> dict[str, Any]:
    event = app_event("put", cluster, namespace, app)
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return event


def executions(machine: str) -> list[dict[str, Any]]:
    return client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]


def execution_input(arn: str) -> dict[str, Any]:
    return json.loads(client("stepfunctions").describe_execution(executionArn=arn)["input"])


def moto_execution(arn: str) -> Any:
    from moto.stepfunctions.models import stepfunctions_backends

    return stepfunctions_backends[ACCOUNT][REGION].describe_execution(arn)


def give_history(arn: str, states: list[str], end: str | None = None) -> None:
    """The history AWS records: each Task state entered then exited; the last one only entered unless ``end``."""
    events: list[dict[str, Any]] = [{"type": "ExecutionStarted", "executionStartedEventDetails": {}}]
    for index, state in enumerate(states):
        events.append({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": state}})
        if index < len(states) - 1 or end:
            events.append({"type": "TaskStateExited", "stateExitedEventDetails": {"name": state}})
    if end == "SUCCEEDED":
        events += [
            {"type": "SucceedStateEntered", "stateEnteredEventDetails": {"name": "AppRunning"}},
            {"type": "SucceedStateExited", "stateExitedEventDetails": {"name": "AppRunning"}},
            {"type": "ExecutionSucceeded", "executionSucceededEventDetails": {}},
        ]
    elif end == "FAILED":
        events += [
            {"type": "FailStateEntered", "stateEnteredEventDetails": {"name": "ProvisionFailed"}},
            {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "ImageNotFound"}},
        ]
    stamp = datetime(2025, 1, 1, tzinfo=UTC)
    history = [{**e, "id": i, "previousEventId": i - 1, "timestamp": stamp} for i, e in enumerate(events, 1)]
    moto_execution(arn).get_execution_history = lambda role_arn: history


def finish(
    arn: str,
    status: str,
    output: Any = None,
    error: str | None = None,
    cause: str | None = None,
    *,
    recorded: bool = False,
) -> None:
    """What Step Functions reports once the execution closed and, with ``recorded``, what its Record… states wrote
    in the app's item (``record_end``); without, the item has only the API's note of it, as for an execution that
    ended before recording itself (ValidateRequest refused it) or without recording its end (stopped, timed out)."""
    execution = moto_execution(arn)
    execution.status, execution.stop_date = status, datetime.now(UTC)
    execution.output = json.dumps(output) if output is not None else None
    execution.error, execution.cause = error, cause
    if recorded:
        record_end(arn, status, output, error, cause)


def record_start(arn: str, request: dict[str, Any]) -> None:
    """The app's item as the execution's start record leaves it (RecordProvisionStart: it removes the API's note)."""
    from fargate_app.inventory import app_key

    normalised = parse_request_for(settings(), request).to_json()
    key = app_key(normalised["cluster"], normalised["namespace"], normalised["app"])
    _write(key, _started_item(key, arn, "provision", normalised, "console", "RUNNING"))


def record_end(arn: str, status: str, output: Any = None, error: str | None = None, cause: str | None = None) -> None:
    """The app's item as the execution's start and end records leave it (statemachine/*.asl.json ``Record…``: the
    Pass state machines here run none; tests/e2e/test_workflows.py checks the real writes)."""
    from fargate_app.inventory import app_key

    started = json.loads(client("stepfunctions").describe_execution(executionArn=arn)["input"])
    kind = "teardown" if ":execution:fargate-app-teardown:" in arn else "provision"
    request = started["request"] if kind == "teardown" else parse_request_for(settings(), started["request"]).to_json()
    key = app_key(request["cluster"], request["namespace"], request["app"])
    item = _started_item(key, arn, kind, request, started.get("caller", "console"), status)
    item["stopDate"] = _now()
    if status == "SUCCEEDED" and kind == "provision":
        result = canonical_json(output)
        item.update(appState="RUNNING", resultJson=result, cachedImage=output["image"]["cached"])
        item["lastGood"] = {
            "executionArn": arn,
            "revision": item["revision"],
            "requestJson": item["requestJson"],
            "cached": output["image"]["cached"],
            "caller": item["caller"],
            "fargateProfileName": output["fargateProfile"]["name"],
            "resultJson": result,
        }
    elif status == "SUCCEEDED":
        item.update(appState="TORN_DOWN", resultJson=canonical_json(output))
        item.pop("lastGood", None)
    else:
        item.update(appState="FAILED", failure={"error": error or "States.Failed", "cause": cause or ""})
    _write(key, item)


def _started_item(key: str, arn: str, kind: str, request: dict[str, Any], caller: str, status: str) -> dict[str, Any]:
    from fargate_app.inventory import read_item, request_hash

    item = read_item(settings(), key) or {}
    for attribute in ("pendingExecution", "pendingKind", "pendingStart", "pendingCaller", "failure", "resultJson"):
        item.pop(attribute, None)
    item.update(app=key, kind=kind, executionArn=arn, executionStatus=status, caller=caller)
    if kind == "provision":
        changed = item.get("requestHash") != request_hash(request)
        revision = int(item.get("revision", 0)) + (1 if changed else 0)
        item.update(revision=revision, requestHash=request_hash(request), requestJson=canonical_json(request))
    return item


def _write(key: str, item: dict[str, Any]) -> None:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    typed = {name: serializer.serialize(value) for name, value in item.items()}
    client("dynamodb").put_item(TableName=settings().apps_table_name, Item=typed)


def settings() -> Any:
    from fargate_app.config import get_settings

    return get_settings()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


CACHED = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/ecr-public/nginx/nginx@sha256:{'ab' * 32}"


def provision_result(arn: str) -> dict[str, Any]:
    """ReportResult's output (the parts the API reads)."""
    return {
        "status": "SUCCEEDED",
        "executionArn": arn,
        "caller": CALLER,
        "request": execution_input(arn)["request"],
        "image": {"requested": "public.ecr.aws/nginx/nginx:stable", "cached": CACHED},
        "fargateProfile": {"name": "fargate-app-shared-0a1b2c3d", "status": "ACTIVE"},
        "ingress": None,
    }
