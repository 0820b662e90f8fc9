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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

STAGE = "v1"  # template.yaml AppsApi StageName
API_ID = "sandboxapi"
# The API's routes (template.yaml AppsApi events): (resource template, its path segments).
ROUTES = ("/apps", "/apps/{cluster}/{namespace}/{app}")


@dataclass(frozen=True)
class GatewayResponse:
    """The HTTP response API Gateway sends."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, ``{}`` when empty. Every body here is the handlers' or the gateway's own JSON: anything
        else is a bug to see, not an error page to tolerate (the CLI's remote ``ApiResponse`` does tolerate them)."""
        return json.loads(self.body) if self.body else {}


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
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The REST proxy event API Gateway would send for ``method target`` (target = path plus query string);
    ``identity``: the caller API Gateway's IAM authorization found (``userArn``, ``accountId``, ``accessKey``…)."""
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
            "identity": {
                "sourceIp": source_ip,
                "userAgent": header_map.get("User-Agent"),
                "accessKey": None,
                **(identity or {}),
            },
        },
        "body": text_body,
        "isBase64Encoded": encoded,
    }


def proxy_response(answer: Mapping[str, Any]) -> GatewayResponse:
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
    return GatewayResponse(status, headers, body)


def internal_error() -> GatewayResponse:
    body = json.dumps({"message": "Internal server error"}).encode()
    return GatewayResponse(502, {"Content-Type": "application/json"}, body)


Invoke = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None]]


class Refusal(Protocol):
    """API Gateway's own answer instead of the integration's (an authorization failure)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> dict[str, str]: ...

    def encoded(self) -> bytes: ...


Authorize = Callable[[str, str, bytes, Mapping[str, str]], "dict[str, Any] | Refusal"]


@dataclass(frozen=True)
class Signer:
    """Signs ``call``'s requests with SigV4 for ``execute-api``, as a client of the deployed API would."""

    credentials: Callable[[], tuple[str, ...]]  # key, secret[, session token]
    region: str
    host: str

    def headers(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method=method, url=f"https://{self.host}{path}", data=body, headers=dict(headers))
        SigV4Auth(Credentials(*self.credentials()), "execute-api", self.region).add_auth(request)
        return {**dict(request.headers.items()), "Host": self.host}


class RestProxyGateway:
    """Turns HTTP requests into proxy events for ``invoke`` (which returns the function's answer, or None and the
    function error's type) and its answers into HTTP responses. With ``authorize``, each request is first
    authorized as API Gateway's AWS_IAM authorization does; the identity it returns goes into the event."""

    def __init__(self, invoke: Invoke, authorize: Authorize | None = None, signer: Signer | None = None) -> None:
        self._invoke = invoke
        self._authorize = authorize
        self._signer = signer

    def handle(
        self, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> GatewayResponse:
        identity: dict[str, Any] | None = None
        if self._authorize is not None:
            decided = self._authorize(method, target, body, headers or {})
            if not isinstance(decided, dict):
                return GatewayResponse(decided.status, dict(decided.headers), decided.encoded())
            identity = decided
        answer, error_type = self._invoke(rest_proxy_event(method, target, body, headers, identity=identity))
        if error_type is not None or answer is None:
            return internal_error()
        return proxy_response(answer)

    def call(self, method: str, path: str, document: Any = None, *, signer: Signer | None = None) -> GatewayResponse:
        """``handle`` for a JSON body (or none), signed by ``signer`` (default: the gateway's own, if any)."""
        body = json.dumps(document).encode() if document is not None else b""
        headers = {"Content-Type": "application/json"} if body else {}
        signer = signer or self._signer
        if signer is not None:
            headers = signer.headers(method, path, body, headers)
        return self.handle(method, path, body, headers)
