"""What API Gateway does in front of the API function: an HTTP request becomes a REST proxy event, the function's
answer becomes the HTTP response.

The event has the fields of API Gateway's Lambda proxy integration input (API Gateway developer guide, "Input format
of a Lambda function for proxy integration"; ``sam local generate-event apigateway aws-proxy``): ``resource`` is the
route template (``/apps/{cluster}/{namespace}/{app}``), ``path`` the concrete path, ``pathParameters`` the values.
A function error becomes 502 ``{"message": "Internal server error"}``, as API Gateway answers it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

STAGE = "sandbox"
API_ID = "sandboxapi"
# The API's routes (template.yaml AppsApi events): (resource template, its path segments).
ROUTES = ("/apps", "/apps/{cluster}/{namespace}/{app}")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; ``{}`` when it is empty or not JSON (an error page, say)."""
        try:
            return json.loads(self.body) if self.body else {}
        except ValueError:
            return {}


def match_route(path: str) -> tuple[str, dict[str, str]] | None:
    """The resource template and path parameters of ``path``, or None when no route has its shape."""
    segments = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
    for resource in ROUTES:
        template = resource.strip("/").split("/")
        if len(template) != len(segments):
            continue
        parameters: dict[str, str] = {}
        for expected, actual in zip(template, segments, strict=True):
            if expected.startswith("{"):
                if not actual:
                    break
                parameters[expected.strip("{}")] = actual
            elif expected != actual:
                break
        else:
            return resource, parameters
    return None


def rest_proxy_event(
    method: str,
    target: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The REST proxy event API Gateway would send for ``method target`` (target = path plus query string)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    matched = match_route(path)
    # An unmatched path has no resource in API Gateway (it answers 403 itself); the function's own 404 is clearer.
    resource, parameters = matched if matched else (path, {})
    query = parse_qs(parts.query, keep_blank_values=True)
    header_map = dict(headers or {})
    now = datetime.now(UTC)
    text_body: str | None
    encoded = False
    if not body:
        text_body = None
    else:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, encoded = base64.b64encode(body).decode(), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": header_map or None,
        "multiValueHeaders": {name: [value] for name, value in header_map.items()} or None,
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "111122223333",
            "apiId": API_ID,
            "resourceId": resource,
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": header_map.get("User-Agent"), "accessKey": None},
        },
        "body": text_body,
        "isBase64Encoded": encoded,
    }


def proxy_response(answer: Mapping[str, Any]) -> ApiResponse:
    """The HTTP response API Gateway makes of the function's proxy answer.

    A malformed answer is API Gateway's 502 "Internal server error" (its "Malformed Lambda proxy response").
    """
    status = answer.get("statusCode")
    if not isinstance(status, int):
        return internal_error()
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ", ".join(str(v) for v in values)
    raw = answer.get("body") or ""
    body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    return ApiResponse(status, headers, body)


def internal_error() -> ApiResponse:
    body = json.dumps({"message": "Internal server error"}).encode()
    return ApiResponse(502, {"Content-Type": "application/json"}, body)


Invoke = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None]]


class RestProxyGateway:
    """Turns HTTP requests into proxy events for ``invoke`` (which returns the function's answer, or None and the
    function error's type) and its answers into HTTP responses."""

    def __init__(self, invoke: Invoke) -> None:
        self._invoke = invoke

    def handle(
        self, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> ApiResponse:
        answer, error_type = self._invoke(rest_proxy_event(method, target, body, headers))
        if error_type is not None or answer is None:
            return internal_error()
        return proxy_response(answer)

    def call(self, method: str, path: str, document: Any = None) -> ApiResponse:
        """``handle`` for a JSON body (or none)."""
        body = json.dumps(document).encode() if document is not None else b""
        headers = {"Content-Type": "application/json"} if body else {}
        return self.handle(method, path, body, headers)
