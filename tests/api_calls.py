"""Calling the template's API function as API Gateway does (a REST proxy event through Lambda Invoke), in a sandbox:
what the e2e and reliability suites share."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

POST_EVENT = Path(__file__).parent / "unit" / "events" / "api_post_apps.json"  # `sam local generate-event` output


def api_event(
    method: str, path: str, body: Any = None, path_parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway REST proxy event: the generated POST event with this method, path and body."""
    event: dict[str, Any] = json.loads(POST_EVENT.read_text())
    event["httpMethod"] = method
    event["path"] = path
    event["resource"] = "/apps" if path == "/apps" else "/apps/{cluster}/{namespace}/{app}"
    event["requestContext"] = {**event["requestContext"], "httpMethod": method, "resourcePath": event["resource"]}
    event["pathParameters"] = path_parameters
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
    else:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: sent as they are
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return event


def call_api(sandbox: Sandbox, workflows: Workflows, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Invoke the template's API function through Lambda Invoke (what API Gateway does): (status, JSON body)."""
    name = workflows.template.functions["ApiFunction"].name
    answer = sandbox.boto3_client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    response = json.loads(answer["Payload"].read())
    return response["statusCode"], json.loads(response["body"])


def post_app(sandbox: Sandbox, workflows: Workflows, body: Any) -> tuple[int, dict[str, Any]]:
    return call_api(sandbox, workflows, api_event("POST", "/apps", body))


def delete_app(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    parameters = {key: request[key] for key in ("cluster", "namespace", "app")}
    path = "/apps/{cluster}/{namespace}/{app}".format(**parameters)
    return call_api(sandbox, workflows, api_event("DELETE", path, None, parameters))
