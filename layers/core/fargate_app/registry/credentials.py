"""Registry credentials from ECR ``GetAuthorizationToken``.

ECR's registry API accepts HTTP Basic with the user ``AWS`` and a 12-hour password; the API returns them already
encoded as ``base64("AWS:<password>")`` together with ``proxyEndpoint``, the registry's URL. That endpoint is used
as is: no host is ever derived from the account and region, so the same code reaches the sandbox's registry.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.errors import UpstreamAuthFailed


@dataclass(frozen=True)
class RegistryCredentials:
    endpoint: str  # scheme://host[:port], no trailing slash
    authorization: str = field(repr=False)  # the Authorization header value; never logged, never in a message

    @property
    def host(self) -> str:
        """The registry host as image references write it (``<account>.dkr.ecr.<region>.amazonaws.com``)."""
        return urlsplit(self.endpoint).netloc


class CredentialSource(Protocol):
    def __call__(self) -> RegistryCredentials: ...


def ecr_credentials() -> RegistryCredentials:
    """A fresh token for this account's private registry.

    Raises:
        UpstreamAuthFailed: ECR returned no usable token.
        AwsThrottled: ECR throttled or failed transiently after the SDK's retries.
        PermanentError: any other refusal (e.g. the function's role lacks ecr:GetAuthorizationToken).
    """
    with aws_errors("get an ECR authorization token"):
        answer = client("ecr").get_authorization_token()
    data = answer.get("authorizationData") or []
    if not data or not data[0].get("authorizationToken") or not data[0].get("proxyEndpoint"):
        raise UpstreamAuthFailed("ECR GetAuthorizationToken returned no token or no registry endpoint")
    token, endpoint = data[0]["authorizationToken"], data[0]["proxyEndpoint"]
    try:
        user, separator, _ = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise UpstreamAuthFailed("ECR GetAuthorizationToken returned a token that is not base64 user:password") from exc
    if not separator or not user:
        raise UpstreamAuthFailed("ECR GetAuthorizationToken returned a token that is not base64 user:password")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UpstreamAuthFailed(
            f"ECR GetAuthorizationToken returned a registry endpoint that is not a URL: {endpoint}"
        )
    return RegistryCredentials(endpoint=f"{parts.scheme}://{parts.netloc}", authorization=f"Basic {token}")
