"""The REST API (API Gateway proxy, AWS_IAM auth): PUT, GET and DELETE /apps/{cluster}/{namespace}/{app}, POST and
GET /apps.

The path of PUT/GET/DELETE names cluster and namespace, so IAM policies on their method ARNs scope a team to its
namespaces (docs/api-access.md); POST /apps carries them in the body and GET /apps lists every namespace's apps, out
of IAM's sight: they are for administrators.
Every execution records its caller, the principal API Gateway authorized (``requestContext.identity.userArn``).

Every answer is a JSON object with ``Content-Type: application/json``. Errors carry ``error`` (a stable name) and
``message`` (what went wrong and what to do); validation errors add ``fields`` (field → rule). Stack traces, request
bodies and AWS credentials never reach a response or a log line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from pydantic import Field, ValidationError

from fargate_app.api.app_records import DEFAULT_PAGE, app_record, list_apps
from fargate_app.api.executions import (
    ApiMisconfigured,
    AppNotFound,
    AppRef,
    ExecutionConflict,
    StartedExecution,
    start_provision,
    start_teardown,
)
from fargate_app.config import get_settings
from fargate_app.errors import FargateAppError, InvalidRequest, Misconfigured, RetryableError, truncate
from fargate_app.models import (
    CALLER,
    ApiModel,
    ClusterName,
    DnsLabel,
    loads_request_document,
    parse_request_for,
    validation_problems,
)
from fargate_app.observability import logger

MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = 5

resolver = APIGatewayRestResolver(debug=False)  # debug would put stack traces in 500 bodies (POWERTOOLS_DEV)


class RequestTooLarge(FargateAppError):
    """The body is over the API's limit (a v1 request is a few hundred bytes)."""


class AppPath(ApiModel):
    """The path parameters, held to the same rules as the request's fields."""

    cluster: ClusterName
    namespace: DnsLabel
    app: DnsLabel


def _json(status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def _error(status: HTTPStatus, error: str, message: str, **extra: Any) -> Response[str]:
    return _json(status, {"error": error, "message": message, **extra})


def _request_body() -> Any:
    """The body as JSON, size-checked before it is parsed.

    Raises:
        RequestTooLarge: over 64 KiB.
        InvalidRequest: missing, not base64/UTF-8 when flagged so, or not JSON.
    """
    event = resolver.current_event
    raw = event.body or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidRequest.of("body", "is flagged base64-encoded but is not valid base64") from None
    if len(data) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"the request body is {len(data)} bytes; at most {MAX_BODY_BYTES} bytes (64 KiB) are accepted"
        )
    if not data.strip():
        raise InvalidRequest.of("body", "is empty; send the v1 request as a JSON object")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest.of("body", "is not UTF-8 text") from None
    return loads_request_document(text, "body")


def _app_path(cluster: str, namespace: str, app: str) -> AppRef:
    """Raises: InvalidRequest naming every path parameter that breaks its rule."""
    try:
        path = AppPath.model_validate({"cluster": cluster, "namespace": namespace, "app": app})
    except ValidationError as exc:
        raise InvalidRequest(validation_problems(exc)) from None
    return AppRef(path.cluster, path.namespace, path.app)


def _accepted(execution: StartedExecution, app: AppRef) -> Response[str]:
    # A new or still-running execution is "accepted, in progress" (202); a replay of a finished one is just an
    # answer (200): nothing was started, and the status says how it ended.
    status = HTTPStatus.ACCEPTED if execution.status == "RUNNING" else HTTPStatus.OK
    return _json(
        status,
        {
            "executionArn": execution.arn,
            "executionName": execution.name,
            "kind": execution.kind,
            "status": execution.status,
            "replayed": execution.replayed,
            "statusUrl": app.status_url,
        },
    )


def _caller() -> str:
    """The principal API Gateway authorized. Raises: ApiMisconfigured when there is none (a route without AWS_IAM)."""
    caller = resolver.current_event.request_context.identity.user_arn
    if not caller or not CALLER.fullmatch(caller):
        raise ApiMisconfigured(
            "the request carries no IAM caller identity: every route of this API must use AWS_IAM authorization"
        )
    return caller


def _provision(document: Any) -> Response[str]:
    caller = _caller()
    request = parse_request_for(get_settings(), document)
    app = AppRef(request.cluster, request.namespace, request.app)
    logger.append_keys(app=str(app))
    return _accepted(start_provision(get_settings(), request, caller), app)


@resolver.post("/apps")
def create_app() -> Response[str]:
    """Unscoped (cluster and namespace are in the body): for administrators."""
    return _provision(_request_body())


@resolver.put("/apps/<cluster>/<namespace>/<app>")
def put_app(cluster: str, namespace: str, app: str) -> Response[str]:
    """Create, replay or update the app the path names; the body's cluster/namespace/app may be left out."""
    ref = _app_path(cluster, namespace, app)
    document = _request_body()
    if not isinstance(document, dict):
        raise InvalidRequest.of("request", "must be a JSON object")
    named = {"cluster": ref.cluster, "namespace": ref.namespace, "app": ref.app}
    mismatched = [field for field, value in named.items() if field in document and document[field] != value]
    if mismatched:
        raise InvalidRequest(
            {field: f"must equal the path's {field} ({named[field]}) or be left out" for field in mismatched}
        )
    return _provision({**document, **named})


@resolver.get("/apps/<cluster>/<namespace>/<app>")
def get_app(cluster: str, namespace: str, app: str) -> Response[str]:
    """From the app inventory: every start, console or API, writes the app's item."""
    ref = _app_path(cluster, namespace, app)
    logger.append_keys(app=str(ref))
    record = app_record(get_settings(), ref)
    if record is None:
        raise AppNotFound(f"app {ref} has no provision or teardown execution")
    return _json(HTTPStatus.OK, record)


@functools.cache
def _list_query() -> type[ApiModel]:
    """GET /apps's query string, held to the request's rules: the model is built on the first listing, so that the
    API's cold start (every route's) does not pay for a class only this route uses."""

    class ListQuery(ApiModel):
        cluster: ClusterName | None = None
        namespace: DnsLabel | None = None
        limit: int = Field(default=DEFAULT_PAGE, ge=1, le=100)
        next_token: str | None = Field(default=None, max_length=4096)

    return ListQuery


@resolver.get("/apps")
def get_apps() -> Response[str]:
    """Every app (or a cluster's, or a namespace's), newest first: for administrators, like POST /apps."""
    try:
        query = _list_query().model_validate(resolver.current_event.query_string_parameters or {})
    except ValidationError as exc:
        raise InvalidRequest(validation_problems(exc)) from None
    page = list_apps(get_settings(), query.cluster, query.namespace, query.limit, query.next_token)  # type: ignore[attr-defined]
    return _json(HTTPStatus.OK, page)


@resolver.delete("/apps/<cluster>/<namespace>/<app>")
def delete_app(cluster: str, namespace: str, app: str) -> Response[str]:
    ref = _app_path(cluster, namespace, app)
    logger.append_keys(app=str(ref))
    return _accepted(start_teardown(get_settings(), ref, _caller()), ref)


# --- errors → HTTP ---
def _invalid_request(exc: InvalidRequest) -> Response[str]:
    logger.info("invalid request", extra={"fields": sorted(exc.problems)})
    return _error(HTTPStatus.BAD_REQUEST, "InvalidRequest", exc.message, fields=exc.problems)


def _too_large(exc: RequestTooLarge) -> Response[str]:
    return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLarge", exc.message)


def _app_not_found(exc: AppNotFound) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, "AppNotFound", exc.message)


def _conflict(exc: ExecutionConflict) -> Response[str]:
    return _error(HTTPStatus.CONFLICT, "ExecutionConflict", exc.message, executionArn=exc.execution_arn)


def _retryable(exc: RetryableError) -> Response[str]:
    logger.warning("Step Functions unavailable", extra={"error": type(exc).__name__, "reason": exc.message})
    return _json(
        HTTPStatus.SERVICE_UNAVAILABLE,
        {"error": type(exc).__name__, "message": exc.message},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _misconfigured(exc: Misconfigured) -> Response[str]:
    logger.error("API misconfigured", extra={"reason": exc.message})
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "ApiMisconfigured", exc.message)


def _upstream_refused(exc: FargateAppError) -> Response[str]:
    # Translated Step Functions refusals (access denied, missing state machine…): the message names the action and
    # AWS's error code, which is what an operator needs; it holds no request data.
    logger.error("Step Functions refused", extra={"error": type(exc).__name__, "reason": exc.message})
    return _error(HTTPStatus.BAD_GATEWAY, type(exc).__name__, exc.message)


def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error")
    request_id = resolver.current_event.request_context.request_id
    return _error(
        HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError", f"unexpected error; the logs of request {request_id} say why"
    )


@resolver.not_found
def _no_route(exc: NotFoundError) -> Response[str]:
    event = resolver.current_event
    return _error(
        HTTPStatus.NOT_FOUND,
        "NotFound",
        f"no route for {event.http_method} {truncate(event.path, 200)}: use PUT|GET|DELETE "
        "/apps/<cluster>/<namespace>/<app>, or POST|GET /apps",
    )


# Registered by call, not as decorators: powertools' decorator is untyped. Powertools picks the handler of the
# nearest class in the exception's MRO, so a subclass's handler wins over FargateAppError's and Exception's.
for _error_class, _handler in (
    (InvalidRequest, _invalid_request),
    (RequestTooLarge, _too_large),
    (AppNotFound, _app_not_found),
    (ExecutionConflict, _conflict),
    (RetryableError, _retryable),
    (Misconfigured, _misconfigured),
    (FargateAppError, _upstream_refused),
    (Exception, _unexpected),
):
    resolver.exception_handler(_error_class)(_handler)
