"""The sandbox's private registry endpoint (docs/design.md §6.6): ECR's registry API in front of pull-through proxies.

``/v2/<prefix>/<repo…>/{manifests,blobs}/<ref>`` goes to the pull-through proxy of the cache rule whose prefix
matches (the longest one), as ``/v2/<repo…>/…``; blobs are streamed, never held in memory; a manifest is recorded
as a cache import before it is answered. Clients log in as ECR requires (Basic ``AWS:<password>`` from
GetAuthorizationToken; ECR user guide, "Private registry authentication"). Errors use the distribution spec's error
body (OCI distribution-spec, "Error Codes").
The first successful manifest pull of a repository creates the cache repository in ECR (ECR user guide, "Using pull
through cache rules").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import urllib3

from fargate_sandbox.ecr_rules import PullThroughCache
from fargate_sandbox.faults import FaultInjector
from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.iam_enforcement import Authorizer
from fargate_sandbox.iam_requests import Check

ROUTE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)$")
TAGS_ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>tags)/list$")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's limit on manifests a registry must accept
STREAM_CHUNK = 64 * 1024
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})
PASS_REQUEST_HEADERS = ("accept", "range", "if-none-match", "user-agent")


class RegistryFront:
    def __init__(
        self,
        cache: PullThroughCache,
        proxies: Mapping[str, str],
        faults: FaultInjector,
        authorizer: Authorizer,
        region: str = "us-west-2",
    ) -> None:
        """``proxies``: upstreamRegistryUrl (e.g. "public.ecr.aws") → base URL of its pull-through proxy."""
        self.cache = cache
        self.authorizer = authorizer
        self.proxies = dict(proxies)
        self.faults = faults
        self.region = region
        self._pool = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(connect=5, read=60))
        self._server = TrackedHTTPServer(_handler_for(self))

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of image references pulled through the sandbox."""
        return self.url.removeprefix("http://")

    def start(self) -> None:
        self._server.start("sandbox-registry-front")

    def stop(self) -> None:
        self._server.stop()
        self._pool.clear()

    @property
    def stopping(self) -> Any:
        return self._server.stopping

    def caller(self, header: str) -> str | None:
        """The access key the Basic ``AWS:<token>`` was issued to, or None for no valid token."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.cache.token_owner(password) if user == "AWS" else None

    def checks(self, repository: str, kind: str, reference: str) -> list[Check]:
        """What ECR authorizes for a registry call (ECR user guide, "Private registry authentication" and "IAM
        permissions required to sync an upstream registry"): a manifest is ecr:BatchGetImage, a layer
        ecr:GetDownloadUrlForLayer; the first pull of a repository needs ecr:CreateRepository, and pulling what the
        cache does not hold yet ecr:BatchImportUpstreamImage."""
        arn = self.authorizer.resources.arn("ecr", f"repository/{repository}")
        action = {"manifests": "ecr:BatchGetImage", "blobs": "ecr:GetDownloadUrlForLayer"}.get(kind, "ecr:ListImages")
        found = [Check(action, arn)]
        if kind == "manifests" and not self.cache.is_imported(repository, reference):
            if not self.cache.repository_exists(repository):
                found.append(Check("ecr:CreateRepository", arn, {}, "the first pull through the cache"))
            found.append(Check("ecr:BatchImportUpstreamImage", arn, {}, "a pull the cache does not hold yet"))
        return found

    def open_upstream(self, base: str, method: str, path: str, headers: dict[str, str]) -> Any:
        return self._pool.request(method, base + path, headers=headers, preload_content=False, redirect=False)


def _error_body(code: str, message: str, detail: Any = None) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]}).encode()


def _handler_for(front: RegistryFront) -> type[QuietHandler]:
    class RegistryFrontHandler(QuietHandler):
        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            caller = front.caller(self.headers.get("Authorization", ""))
            if caller is None:
                challenge = f'Basic realm="{front.url}/",service="ecr.amazonaws.com"'
                self._send(401, _error_body("UNAUTHORIZED", "authentication required"), {"WWW-Authenticate": challenge})
                return
            fault = front.faults.take_registry(self.command, path)
            if fault is not None:
                if fault.hang_seconds is not None:
                    front.stopping.wait(fault.hang_seconds)
                    self.close_connection = True  # a hung upstream: no answer at all
                    return
                self._send(fault.status or 503, _error_body("UNAVAILABLE", "service unavailable"))
                return
            if path in ("/v2", "/v2/"):
                self._send(200, b"{}")
                return
            route = ROUTE.match(path) or TAGS_ROUTE.match(path)
            if route is None:
                self._send(404, _error_body("NAME_UNKNOWN", "repository name not known to registry", {"path": path}))
                return
            name = route["name"]
            reference = route.groupdict().get("reference") or ""
            # IAM decides before the repository is looked up: a caller without the grant learns nothing about it.
            denied = front.authorizer.authorize_checks(caller, front.checks(name, route["kind"], reference))
            if denied is not None:
                self._send(403, _error_body("DENIED", denied))
                return
            match = front.cache.rule_for(name)
            if match is None:
                self._send(404, _error_body("NAME_UNKNOWN", "repository name not known to registry", {"name": name}))
                return
            rule, upstream_repo = match
            base = front.proxies.get(rule.upstream_url)
            if base is None:
                message = f"no upstream registry is reachable for {rule.upstream_url}"
                self._send(503, _error_body("UNAVAILABLE", message, {"name": name}))
                return
            if (
                route["kind"] == "manifests"
                and reference.startswith("sha256:")
                and not front.cache.is_cached(name, reference)
            ):
                message = f"manifest {reference} is not in the cache: pull it by tag first"
                self._send(404, _error_body("MANIFEST_UNKNOWN", message, {"name": name, "digest": reference}))
                return
            suffix = path[len("/v2/") + len(name) :]
            self._proxy(base, f"/v2/{upstream_repo}{suffix}", name, route)

        def _proxy(self, base: str, upstream_path: str, name: str, route: re.Match[str]) -> None:
            # A client may send a list field such as Accept as several lines (skopeo does); RFC 9110 §5.3 makes
            # them one comma-separated value, which is what the proxy must see.
            headers = {h: ", ".join(self.headers.get_all(h) or ()) for h in PASS_REQUEST_HEADERS if self.headers.get(h)}
            try:
                answer = front.open_upstream(base, self.command, upstream_path, headers)
            except urllib3.exceptions.HTTPError as exc:
                self._send(503, _error_body("UNAVAILABLE", f"upstream proxy did not answer: {type(exc).__name__}"))
                return
            try:
                chunks: Iterable[bytes] = ()
                if route["kind"] == "manifests" and self.command == "GET" and answer.status == 200:
                    # ECR answers a pull through its cache once it has imported the image (an index with the
                    # manifests it lists): record it before the client has the answer, so a pull by a digest the
                    # answer names, on another connection a moment later, finds it.
                    manifest = answer.read(decode_content=False)
                    if len(manifest) <= MAX_MANIFEST_BYTES:
                        media_type = answer.headers.get("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                        front.cache.record_pull(name, route["reference"], manifest, media_type.split(";")[0])
                    chunks = (manifest,)
                elif self.command != "HEAD":
                    chunks = answer.stream(STREAM_CHUNK, decode_content=False)
                self.send_response(answer.status)
                length = answer.headers.get("Content-Length")
                for header, value in answer.headers.items():
                    if header.lower() not in HOP_BY_HOP and header.lower() != "content-length":
                        self.send_header(header, value)
                chunked = length is None and self.command != "HEAD"
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", length or "0")
                self.end_headers()
                for chunk in filter(None, chunks):  # an empty chunk would end a chunked body
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            finally:
                answer.release_conn()

        do_GET = do_HEAD = _serve

    return RegistryFrontHandler
