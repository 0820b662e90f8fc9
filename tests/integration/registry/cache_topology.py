"""The registry topology of these tests: a real pull-through cache on loopback, shaped like ECR's:

    client ──► front (ECR's endpoint: /v2/<prefix>/<repo> → /v2/<repo>; injects 5xx on demand)
           ──► proxy (distribution in proxy mode, htpasswd Basic auth: user AWS, the token's password)
           ──► upstream (distribution, plain HTTP, images pushed by the fixtures)

Faults are injected in front of the proxy because that is where the warmer's retries act: distribution's proxy
turns an upstream 5xx on a tag into 404 MANIFEST_UNKNOWN (it falls back to its local tags), so a fault behind it
would never reach the client as a 503.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import threading
from dataclasses import dataclass, field

import urllib3

from fargate_app.registry import RetryPolicy
from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.oci_images import Image, Index
from fargate_sandbox.registry_procs import RegistryProcess

FAST_RETRY = RetryPolicy(retries=3, backoff_factor=0.001, backoff_max=0.01, backoff_jitter=0.0)
PREFIXES = ("ecr-public", "docker-hub", "quay")
_FORWARDED_REQUEST_HEADERS = ("Authorization", "Accept", "User-Agent")
_FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate", "Location", "Retry-After")


@dataclass
class FaultPlan:
    """Answer ``status`` instead of forwarding, ``remaining`` times, to requests whose path contains ``path_part``."""

    remaining: int = 0
    status: int = 503
    path_part: str = ""
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, path: str) -> bool:
        with self.lock:
            if self.remaining > 0 and self.path_part in path:
                self.remaining -= 1
                self.served += 1
                return True
            return False


class RegistryFront(TrackedHTTPServer):
    """What ECR's registry endpoint is to the cache: one host, repositories named ``<prefix>/<upstream repo>``."""

    def __init__(self, proxy: RegistryProcess, prefixes: tuple[str, ...] = PREFIXES) -> None:
        super().__init__(_FrontHandler)
        self.proxy = proxy
        self.route = re.compile(rf"^/v2/(?:{'|'.join(map(re.escape, prefixes))})/(?P<rest>.+)$")
        self.faults = FaultPlan()
        self.paths: list[str] = []
        self.start("registry-front")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def inject(self, count: int, *, status: int = 503, path_part: str = "") -> FaultPlan:
        self.faults = FaultPlan(remaining=count, status=status, path_part=path_part)
        return self.faults


class _FrontHandler(QuietHandler):
    server: RegistryFront

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        front = self.server
        front.paths.append(self.path)
        if front.faults.take(self.path):
            self._answer(
                front.faults.status, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAVAILABLE"}]}'
            )
            return
        if self.path == "/v2/":
            target = self.path
        elif match := front.route.match(self.path):
            target = "/v2/" + match["rest"]
        else:
            body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"no pull-through cache rule for this prefix"}]}'
            self._answer(404, {"Content-Type": "application/json"}, body)
            return
        connection = http.client.HTTPConnection("127.0.0.1", front.proxy.port, timeout=30)
        try:
            headers = {name: self.headers[name] for name in _FORWARDED_REQUEST_HEADERS if self.headers[name]}
            connection.request(self.command, target, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = {name: answer.headers[name] for name in _FORWARDED_RESPONSE_HEADERS if answer.headers[name]}
            self._answer(answer.status, kept, body if self.command == "GET" else b"", length=len(body))
        except OSError:
            self._answer(502, {"Content-Type": "text/plain"}, b"proxy unreachable")
        finally:
            connection.close()

    def _answer(self, status: int, headers: dict[str, str], body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Cache:
    """The running topology and what the fixtures pushed (digests as the upstream computed them)."""

    upstream: RegistryProcess
    proxy: RegistryProcess
    front: RegistryFront
    password: str
    nginx: Index
    nginx_digest: str
    redis: Image
    redis_digest: str
    arm_only: Index
    arm_only_digest: str

    def get(self, path: str, *, password: str | None = None, accept: str = "*/*") -> urllib3.BaseHTTPResponse:
        """A plain GET through the front, as a node's container runtime would do it."""
        token = base64.b64encode(f"AWS:{password or self.password}".encode()).decode()
        return urllib3.request(
            "GET", self.front.url + path, headers={"Authorization": f"Basic {token}", "Accept": accept}, retries=False
        )


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
