"""EKS bearer tokens from IAM credentials, built the way ``aws eks get-token`` and aws-iam-authenticator build them.

A token is ``k8s-aws-v1.`` + the unpadded base64url of a presigned STS ``GetCallerIdentity`` URL whose signature
covers the header ``x-k8s-aws-id: <cluster name>``. The API server replays the URL against STS with its own cluster
name in that header: a token presigned for another cluster fails the signature check, and STS answers with the
caller's ARN, which EKS maps to Kubernetes identities through access entries.
(awscli ``customizations/eks/get_token.py``; aws-iam-authenticator ``pkg/token/token.go``.)

The token is a credential: it is never logged and never put in an error message.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

from fargate_app.aws.errors import aws_errors

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# The presigned URL itself says 60 s (what awscli uses); EKS accepts a token for 15 minutes after its X-Amz-Date.
PRESIGN_EXPIRES_SECONDS = 60
_lock = threading.Lock()


@dataclass(frozen=True)
class EksToken:
    """A bearer token; ``repr`` hides the value."""

    value: str = field(repr=False)


def _move_cluster_id_to_context(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # GetCallerIdentity has no such parameter: take it out before botocore validates the parameters...
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _sign_cluster_id_header(request: Any, **_: Any) -> None:
    # ...and put it back as a header just before signing, so that the signature covers it.
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]


@cache
def _sts_client(region: str) -> Any:
    """A dedicated STS client: the handlers registered here must not affect other users of a shared client.

    botocore resolves the regional STS endpoint (EKS accepts tokens of any region) and honours ``AWS_ENDPOINT_URL``
    (a botocore client, as in :mod:`fargate_app.aws.clients`: boto3's import would only add s3transfer).
    """
    sts = botocore.session.get_session().create_client(
        "sts", region_name=region, config=Config(retries={"mode": "standard"})
    )
    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", _move_cluster_id_to_context)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", _sign_cluster_id_header)
    return sts


def reset_sts_clients() -> None:
    """Forget cached STS clients and the credentials they resolved (tests that change credentials)."""
    with _lock:
        _sts_client.cache_clear()


def presigned_identity_url(cluster: str, region: str) -> str:
    """The presigned ``GetCallerIdentity`` URL that carries the cluster name as a signed header.

    Raises:
        AwsThrottled: STS endpoint resolution or credential lookup failed transiently.
        PermanentError: no usable credentials.
    """
    with _lock:
        sts = _sts_client(region)
    with aws_errors(f"presign an STS GetCallerIdentity token for EKS cluster {cluster}"):
        url: str = sts.generate_presigned_url(
            "get_caller_identity",
            Params={CLUSTER_ID_HEADER: cluster},
            ExpiresIn=PRESIGN_EXPIRES_SECONDS,
            HttpMethod="GET",
        )
    return url


def eks_token(cluster: str, region: str) -> EksToken:
    """A fresh bearer token for ``cluster`` (see the module docstring for the format).

    Raises:
        AwsThrottled, PermanentError: as :func:`presigned_identity_url`.
    """
    url = presigned_identity_url(cluster, region)
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return EksToken(value=TOKEN_PREFIX + encoded)
