"""The AWS endpoint of the sandbox: a thin HTTP front that forwards every request to moto unchanged, except for
the rules moto lacks (Fargate profiles, pull-through cache, registry tokens, CloudTrail events, EC2's filter names),
IAM authorization of every call (``iam_enforcement``) and injected faults.

Clients reach it with ``AWS_ENDPOINT_URL=http://127.0.0.1:<port>``, so production code takes the same path as in AWS.
Requests are identified by their SigV4 credential scope and botocore's service models (``aws_protocol``); answers
the front makes itself use each service's wire protocol, so botocore raises the same ``ClientError`` as in AWS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import urllib3

from fargate_sandbox import ec2_rules, ecr_rules, eks_rules, sfn_paging
from fargate_sandbox.aws_protocol import AwsError, AwsRequest, parse_request, render_error
from fargate_sandbox.ecr_rules import EcrError, PullThroughCache
from fargate_sandbox.eks_rules import EksProfileError, FargateProfileRules
from fargate_sandbox.events import EventRouter, cloudtrail_event
from fargate_sandbox.faults import FaultInjector
from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.iam_enforcement import Authorizer
from fargate_sandbox.moto_backend import ACCOUNT_HEADER, MotoBackend

# Hop-by-hop headers, plus the ones the front's own HTTP server writes (Server, Date, Content-Length).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "content-length"}
    | {"server", "date"}
)
Response = tuple[int, dict[str, str], bytes]
# AWS's common error for a failure inside the service (API references, "Common Errors": InternalFailure, HTTP 500),
# answered where moto itself fails: AWS never answers a web server's HTML error page without a request id.
MOTO_FAILED = AwsError(
    "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.", 500
)
_log = logging.getLogger(__name__)
# Answers a request itself (e.g. lambda:Invoke of a template function, lambda_dispatch) or returns None to pass it on.
Interceptor = Callable[[AwsRequest], Response | None]


class AwsFront:
    def __init__(
        self,
        moto: MotoBackend,
        faults: FaultInjector,
        profiles: FargateProfileRules,
        cache: PullThroughCache,
        events: EventRouter,
        authorizer: Authorizer,
    ) -> None:
        self.moto = moto
        self.authorizer = authorizer
        self.faults = faults
        self.profiles = profiles
        self.cache = cache
        self.events = events
        self.interceptors: list[Interceptor] = []
        self._pool = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(connect=5, read=120))
        self._server = TrackedHTTPServer(_handler_for(self))

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start("sandbox-aws-front")

    def stop(self) -> None:
        self._server.stop()
        self._pool.clear()  # moto's handler threads end when their kept-alive connections close

    # --- request handling -------------------------------------------------------------------------------------------
    def answer(self, request: AwsRequest) -> tuple[Response, dict[str, Any] | None]:
        """(response, event to deliver after the response is sent)."""
        fault = self.faults.take_aws(request.service, request.operation)
        if fault is not None:
            return render_error(request.service, fault), None
        denied = self.authorizer.authorize(request)
        if denied is not None:
            return denied, None
        for intercept in list(self.interceptors):
            intercepted = intercept(request)
            if intercepted is not None:
                return intercepted, None
        if request.service == "ec2" and (refused := ec2_rules.refused_filter(request)) is not None:
            return render_error("ec2", refused), None
        event = None
        try:
            if request.service == "eks" and request.operation in eks_rules.HANDLED_OPERATIONS:
                response = self.profiles.handle(request, self.forward)
            elif request.service == "ecr" and request.operation in ecr_rules.HANDLED_OPERATIONS:
                response = self.cache.handle(request)
                event = self._event_for(request, response)
            elif (request.service, request.operation) == ("stepfunctions", "GetExecutionHistory"):
                response = self._history_page(request)
            else:
                response = self.forward(request)
        except sfn_paging.InvalidToken as exc:
            return render_error("stepfunctions", exc.error), None
        except EksProfileError as exc:
            return render_error("eks", exc.error), None
        except EcrError as exc:
            return render_error("ecr", exc.error), None
        self.authorizer.observe(request, response)
        if (request.service, request.operation) == ("ecr", "DeleteRepository") and response[0] < 300:
            # A deleted cache repository is pulled through (and created) again: ECR user guide, "Pull through cache".
            self.cache.forget(str(request.json_body().get("repositoryName", "")))
        return response, event

    def forward(self, request: AwsRequest) -> Response:
        """Send the request to moto as it came (plus the account header) and return moto's answer."""
        headers = {name: value for name, value in request.headers.items() if name not in HOP_BY_HOP | {"host"}}
        headers[ACCOUNT_HEADER] = self.moto.account_id
        if request.service == "eks" and "authorization" not in headers:
            # Internal replays (eks_rules) carry no signature; moto routes REST-JSON by the credential scope.
            headers["authorization"] = (
                f"AWS4-HMAC-SHA256 Credential=sandbox/20240101/{self.moto.region}/eks/aws4_request, "
                "SignedHeaders=host, Signature=0"
            )
        path = request.path + (f"?{request.raw_query}" if request.raw_query else "")
        answer = self._pool.request(
            request.method, self.moto.url + path, body=request.body or None, headers=headers, preload_content=True
        )
        out_headers = {name: value for name, value in answer.headers.items() if name.lower() not in HOP_BY_HOP}
        if answer.status >= 500 and answer.headers.get("content-type", "").startswith("text/html"):
            # moto raised (its server's traceback is in the werkzeug log): answer as AWS does when it fails inside,
            # in the service's protocol and with a request id, which Step Functions puts in the failure's cause
            _log.error("moto failed on %s (HTTP %s); answered %s", request.api, answer.status, MOTO_FAILED.code)
            return render_error(request.service, MOTO_FAILED)
        return answer.status, out_headers, answer.data

    def _history_page(self, request: AwsRequest) -> Response:
        """moto's whole history, cut to the page the request asks for (sfn_paging)."""
        status, headers, body = self.forward(request)
        if status != 200:
            return status, headers, body
        page = sfn_paging.history_page(json.loads(body)["events"], request.json_body())
        return status, headers, json.dumps(page).encode()

    def _event_for(self, request: AwsRequest, response: Response) -> dict[str, Any] | None:
        status, _headers, body = response
        if request.operation != "CreatePullThroughCacheRule" or status != 200:
            return None
        access_key = request.headers.get("authorization", "").partition("Credential=")[2].split("/")[0]
        return cloudtrail_event(
            service="ecr",
            event_name="CreatePullThroughCacheRule",
            account_id=self.moto.account_id,
            region=self.moto.region,
            request_parameters=request.json_body(),
            response_elements=json.loads(body),
            access_key_id=access_key,
            user_agent=request.headers.get("user-agent", ""),
        )


def _handler_for(front: AwsFront) -> type[QuietHandler]:
    class AwsFrontHandler(QuietHandler):
        def _serve(self) -> None:
            body = _read_body(self)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = parse_request(self.command, self.path, headers, body)
            (status, out_headers, payload), event = front.answer(request)
            with front.events.on_the_way() if event is not None else nullcontext():
                self.send_response(status)
                for name, value in out_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                self.wfile.flush()
                if event is not None:
                    # After the answer: EventBridge delivers asynchronously to the caller of the API.
                    front.events.deliver(event)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    return AwsFrontHandler


def _read_body(handler: QuietHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""
