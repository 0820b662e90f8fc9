"""The API of a deployed stack, called with SigV4 (the API uses ``AWS_IAM`` authorization).

Requests are signed by botocore's ``SigV4Auth`` for service ``execute-api`` with the standard credential chain
(environment, shared files, SSO, container/instance roles — botocore's, not ours). The region is ``--region``, else
the one in an ``<id>.execute-api.<region>.amazonaws.com`` URL, else ``AWS_REGION``, else botocore's chain
(``AWS_DEFAULT_REGION``, the profile).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
TIMEOUT_SECONDS = 35  # API Gateway answers within 29 s or gives up itself
# A loopback API is a `fargate-app sandbox serve`: without AWS credentials configured, calls are signed with the
# sandbox administrator's key, which is fixed and fake (docs/sandbox.md) and which that API's AWS_IAM check accepts.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SANDBOX_KEY = ("AKIASANDBOX000000000", "sandbox")
SANDBOX_REGION = "us-west-2"
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class ApiResponse:
    """What the CLI reads of an answer: its status and body (no command shows a header)."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ``{}`` when it is empty or not JSON (an error page, say)."""
        try:
            return json.loads(self.body) if self.body else {}
        except ValueError:
            return {}


class RemoteConfigError(Exception):
    """The API URL, region or credentials are missing or unusable; the message says which and what to do."""


class RemoteCallError(Exception):
    """The API could not be reached (DNS, TLS, connection, timeout)."""


def region_from_url(url: str) -> str | None:
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    return match["region"] if match else None


def app_path(cluster: str, namespace: str, app: str) -> str:
    return "/apps/" + "/".join(quote(part, safe="") for part in (cluster, namespace, app))


class RemoteApi:
    def __init__(self, api_url: str, *, region: str | None = None, session: Any = None) -> None:
        """
        Raises:
            RemoteConfigError: the URL is not http(s), no region can be found, or the chain has no credentials.
        """
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RemoteConfigError(
                f"--api must be the API's URL, e.g. https://<id>.execute-api.<region>.amazonaws.com/prod; got {api_url!r}"
            )
        self.base_url = api_url.rstrip("/")
        self._session = session or botocore.session.Session()
        local_sandbox = parts.hostname in LOOPBACK_HOSTS
        # AWS_REGION is the SDKs' standard variable; botocore's own chain reads AWS_DEFAULT_REGION and the profile.
        found_region = (
            region
            or region_from_url(api_url)
            or os.environ.get("AWS_REGION")
            or self._session.get_config_variable("region")
            or (SANDBOX_REGION if local_sandbox else None)
        )
        if not found_region:
            raise RemoteConfigError(
                "no AWS region: pass --region, set AWS_REGION (or a profile's region), or use the execute-api URL"
            )
        self.region: str = found_region
        credentials = self._session.get_credentials()
        if credentials is None and local_sandbox:
            credentials = Credentials(*SANDBOX_KEY)
        if credentials is None:
            raise RemoteConfigError(
                "no AWS credentials found (environment, ~/.aws/credentials, SSO, instance role): configure one"
            )
        self._credentials = credentials

    def frozen_credentials(self) -> Credentials:
        frozen = self._credentials.get_frozen_credentials()  # refreshes temporary credentials when due
        return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)

    def call(self, method: str, path: str, document: Any = None) -> ApiResponse:
        """One signed request; the API's answer whatever its status.

        Raises:
            RemoteCallError: no HTTP answer at all.
        """
        body = json.dumps(document).encode() if document is not None else b""
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=f"{self.base_url}{path}", data=body, headers=headers)
        SigV4Auth(self.frozen_credentials(), SERVICE, self.region).add_auth(signed)
        prepared = signed.prepare()
        outgoing = urllib.request.Request(  # noqa: S310 - the scheme was checked to be http(s)
            prepared.url, data=body or None, headers=dict(prepared.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                return ApiResponse(answer.status, answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return ApiResponse(exc.code, exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteCallError(f"{method} {self.base_url}{path}: {reason}") from exc
