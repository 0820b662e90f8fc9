"""What an AWS request is (service, operation, parameters) and how each AWS protocol spells an error.

The front must recognise a few operations among everything it forwards, and the fault hooks name any operation as
``"<service>:<Operation>"``. Both come from botocore's service models, the same JSON AWS generates its SDKs from, so
the sandbox never keeps its own table of URLs.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import botocore.session

# SigV4 signing names that differ from botocore's service names.
SIGNING_NAME_TO_SERVICE = {"states": "stepfunctions", "execute-api": "apigateway"}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_QUERY_CREDENTIAL = re.compile(r"^[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request$")


@dataclass(frozen=True)
class AwsError:
    """An error answer in AWS's own terms: the code the SDK raises, its message and HTTP status."""

    code: str
    message: str
    status: int = 400


@dataclass
class AwsRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw_query: str = ""
    service: str | None = None  # botocore service name
    operation: str | None = None
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """``"eks:CreateFargateProfile"``: the name fault hooks and logs use."""
        return f"{self.service}:{self.operation}"

    def json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {}


_BOTOCORE = botocore.session.get_session()  # one loader for every model: it lists botocore's data directory once
_models_lock = threading.Lock()


def service_model(service: str) -> Any:
    """botocore's model of ``service``, loaded once per process (the lock keeps a burst of first requests from
    loading it once each).

    Raises:
        botocore.exceptions.UnknownServiceError: botocore has no model of ``service``.
    """
    with _models_lock:
        return _loaded_model(service)


@cache
def _loaded_model(service: str) -> Any:
    return _BOTOCORE.get_service_model(service)


@cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], int, str]]:
    """(method, path regex, literal length, operation) for a REST service, most specific first."""
    routes = []
    model = service_model(service)
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"].split("?")[0]
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", uri):
            if piece.startswith("{"):
                label = piece[1:-1]
                greedy = label.endswith("+")
                label = label.rstrip("+")
                pattern += f"(?P<{label}>{'.+' if greedy else '[^/]+'})"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        routes.append((http["method"], re.compile(f"^{pattern.rstrip('/') or '/'}/?$"), literal, name))
    routes.sort(key=lambda route: -route[2])
    return routes


def signing_service(headers: dict[str, str], query: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """(botocore service, region) from the SigV4 credential scope of the header or of a presigned URL."""
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    if match is None and query.get("X-Amz-Credential"):
        match = _QUERY_CREDENTIAL.match(query["X-Amz-Credential"][0])
    if match is None:
        return None, None
    region, signing_name = match.group(1), match.group(2)
    return SIGNING_NAME_TO_SERVICE.get(signing_name, signing_name), region


def parse_request(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> AwsRequest:
    """Identify the service and operation of a request the way the service's endpoint would route it."""
    split = urlsplit(raw_path)
    query = parse_qs(split.query, keep_blank_values=True)
    request = AwsRequest(method=method, path=split.path, query=query, headers=headers, body=body, raw_query=split.query)
    service, _region = signing_service(headers, query)
    request.service = service
    if service is None:
        return request
    try:
        protocol = service_model(service).metadata["protocol"]
    except Exception:  # an unknown service: forward it untouched, moto will answer
        return request
    target = headers.get("x-amz-target", "")
    if protocol == "json" and "." in target:
        request.operation = target.rsplit(".", 1)[1]
    elif protocol in ("query", "ec2"):
        form = parse_qs(body.decode("utf-8", errors="replace")) if body else {}
        actions = form.get("Action") or query.get("Action") or []
        action = actions[0] if actions else None
        request.operation = action
    else:
        for route_method, regex, _literal, name in _rest_routes(service):
            matched = regex.match(split.path) if route_method == method else None
            if matched:
                request.operation = name
                request.path_params = {key: value for key, value in matched.groupdict().items() if value}
                break
    return request


def render_error(service: str | None, error: AwsError) -> tuple[int, dict[str, str], bytes]:
    """The error as ``service``'s protocol puts it on the wire, so botocore raises ``ClientError`` with ``code``."""
    request_id = str(uuid.uuid4())
    protocol = service_model(service).metadata["protocol"] if service else "json"
    if protocol == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(error.code)}</Code>'
            f"<Message>{escape(error.message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return error.status, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    if protocol == "query":
        body = (
            f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/"><Error><Type>Sender</Type>'
            f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return error.status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1" if protocol == "json" else "application/json",
        "x-amzn-ErrorType": error.code,
        "x-amzn-RequestId": request_id,
    }
    return error.status, headers, json.dumps({"__type": error.code, "message": error.message}).encode()


def throttling_error(service: str | None) -> AwsError:
    """The throttling answer each service really gives (codes botocore's retry handler treats as throttling).

    IAM and STS (query protocol) answer ``Throttling`` "Rate exceeded"; EC2 answers ``RequestLimitExceeded``
    "Request limit exceeded." with 503; JSON and REST-JSON services answer ``ThrottlingException`` "Rate exceeded".
    """
    if service in ("iam", "sts"):
        return AwsError("Throttling", "Rate exceeded", 400)
    if service == "ec2":
        return AwsError("RequestLimitExceeded", "Request limit exceeded.", 503)
    protocol = service_model(service).metadata["protocol"] if service else "json"
    return AwsError("ThrottlingException", "Rate exceeded", 429 if protocol == "rest-json" else 400)
