"""Bearer-token authentication the way EKS (aws-iam-authenticator ``pkg/token``) does it, with pluggable STS.

A token is ``k8s-aws-v1.`` + unpadded base64url of a presigned STS ``GetCallerIdentity`` URL. The server checks the
URL's shape (action, algorithm, ``x-k8s-aws-id`` among ``X-Amz-SignedHeaders``, a ``X-Amz-Date`` no older than 15
minutes), then replays it against STS with the header ``x-k8s-aws-id: <its own cluster name>``: the signature only
matches when the token was made for this cluster, and STS's answer names the caller. Verifiers:
- :class:`StsReplayVerifier` sends the request to an STS endpoint (the sandbox's moto) and accepts a 200;
- :class:`SignatureVerifier` recomputes the SigV4 signature locally from known credentials (moto's STS does not
  check signatures, so this is the one that proves the cluster name was signed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlsplit

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_MAX_AGE_SECONDS = 15 * 60
# botocore signs a GET presign with the hash of the empty body (SigV4Auth.payload), not UNSIGNED-PAYLOAD.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Identity:
    username: str
    groups: tuple[str, ...] = field(default=("system:authenticated",))


class Authenticator(Protocol):
    def authenticate(self, token: str) -> Identity | None: ...


class IdentityVerifier(Protocol):
    def verify(self, url: str, cluster: str) -> str | None:
        """The caller's ARN when STS accepts the presigned ``url`` signed for ``cluster``, else None."""


class AllowAll:
    """Any non-empty bearer token is user "admin" (for emulator tests that are not about authentication)."""

    def authenticate(self, token: str) -> Identity | None:
        return Identity("admin", ("system:masters", "system:authenticated")) if token else None


def decode(token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    payload = token[len(TOKEN_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


class EksTokenAuthenticator:
    def __init__(self, cluster: str, verifier: IdentityVerifier, clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.verifier = verifier
        self.clock = clock

    def authenticate(self, token: str) -> Identity | None:
        url = decode(token)
        if url is None:
            return None
        parts = urlsplit(url)
        query = {key.lower(): value for key, value in parse_qsl(parts.query)}
        signed = query.get("x-amz-signedheaders", "").split(";")
        if (
            parts.path not in ("", "/")
            or query.get("action") != "GetCallerIdentity"
            or query.get("x-amz-algorithm") != "AWS4-HMAC-SHA256"
            or CLUSTER_ID_HEADER not in signed
            or not query.get("x-amz-credential")
        ):
            return None
        try:
            signed_at = datetime.strptime(query.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        age = self.clock() - signed_at.timestamp()
        if not -TOKEN_MAX_AGE_SECONDS < age < TOKEN_MAX_AGE_SECONDS:
            return None
        arn = self.verifier.verify(url, self.cluster)
        return Identity(arn) if arn else None


class StsReplayVerifier:
    """Replays the presigned query against ``endpoint`` (e.g. ``http://127.0.0.1:<moto>``), as EKS does against STS."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def verify(self, url: str, cluster: str) -> str | None:
        request = urllib.request.Request(  # noqa: S310 - the endpoint is configured, http(s) only
            f"{self.endpoint}/?{urlsplit(url).query}",
            # Host as signed (sts.<region>.amazonaws.com): the signature covers it, and moto routes on it.
            headers={CLUSTER_ID_HEADER: cluster, "Accept": "application/json", "Host": urlsplit(url).netloc},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError):
            return None
        try:
            result = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            return str(result["Arn"])
        except (ValueError, KeyError, TypeError):
            match = re.search(r"<Arn>([^<]+)</Arn>", body)
            return match.group(1) if match else None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


class SignatureVerifier:
    """Recomputes the SigV4 query signature with ``x-k8s-aws-id: <cluster>``; the ARN comes from ``arn_for``."""

    def __init__(self, secret_for: Callable[[str], str | None], arn_for: Callable[[str], str | None]) -> None:
        self.secret_for = secret_for
        self.arn_for = arn_for

    def verify(self, url: str, cluster: str) -> str | None:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = dict(pairs)
        access_key, date, region, service, _ = query["X-Amz-Credential"].split("/")
        secret = self.secret_for(access_key)
        if secret is None:
            return None
        signed_headers = query["X-Amz-SignedHeaders"]
        values = {"host": parts.netloc, CLUSTER_ID_HEADER: cluster}
        if any(name not in values for name in signed_headers.split(";")):
            return None
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs) if k != "X-Amz-Signature"
        )
        canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers.split(";"))
        canonical = "\n".join(
            ["GET", parts.path or "/", canonical_query, canonical_headers, signed_headers, EMPTY_SHA256]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = b"AWS4" + secret.encode()
        for element in (date, region, service, "aws4_request"):
            key = _hmac(key, element)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
            return None
        return self.arn_for(access_key)
