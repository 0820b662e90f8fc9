"""API Gateway's AWS_IAM authorization in front of the sandbox's API: SigV4 first, then ``execute-api:Invoke``.

As a REST API method with ``AuthorizationType: AWS_IAM`` does it (API Gateway developer guide, "Control access to a
REST API with IAM permissions"), before the integration runs:
- no signature: 403 ``{"message": "Missing Authentication Token"}`` (``MissingAuthenticationTokenException``);
- a key IAM does not know: 403 "The security token included in the request is invalid." (``UnrecognizedClient``);
- a signature that does not verify: 403 ``InvalidSignatureException``;
- the caller's identity policies do not allow ``execute-api:Invoke`` on the method ARN
  ``arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>``: 403
  ``{"Message": "User: <arn> is not authorized to perform: execute-api:Invoke on resource: <method ARN>"}``
  (AWS re:Post knowledge center, "troubleshoot HTTP 403 Forbidden errors from API Gateway").
An allowed call reaches the function with the caller in ``requestContext.identity`` (``userArn``, ``accountId``,
``accessKey``, ``caller``, ``user``), as API Gateway's proxy integration fills it for IAM-authorized methods.

The policies are the ones the sandbox's IAM evaluates for every other call (``iam_policy``, read from moto's IAM);
nothing here comes from the project's production code. The administrator's key is allowed everything, as an
account's administrator with ``AdministratorAccess`` is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fargate_sandbox import iam_policy
from fargate_sandbox.iam_enforcement import Authorizer

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
INVALID_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Refusal:
    """API Gateway's own 403 answer: its body and ``x-amzn-ErrorType``."""

    status: int
    headers: dict[str, str]
    body: dict[str, str]

    @classmethod
    def of(cls, error_type: str, body: dict[str, str]) -> Refusal:
        return cls(403, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}, body)

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


class ApiAuthorizer:
    def __init__(self, iam: Authorizer, api_id: str, stage: str) -> None:
        self.iam = iam
        self.api_id = api_id
        self.stage = stage

    def method_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{self.iam.region}:{self.iam.account}:{self.api_id}/{self.stage}/"
            f"{method.upper()}/{path.lstrip('/')}"
        )

    def authorize(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | Refusal:
        """``requestContext.identity`` of the caller, or API Gateway's refusal."""
        lowered = {name.lower(): value for name, value in headers.items()}
        match = _AUTHORIZATION.match(lowered.get("authorization", ""))
        if match is None:
            return Refusal.of("MissingAuthenticationTokenException", {"message": "Missing Authentication Token"})
        key = match["key"]
        secret = self.iam.secret_for(key)
        caller_arn = self.iam.arn_for(key)
        if secret is None or caller_arn is None:
            return Refusal.of(
                "UnrecognizedClientException", {"message": "The security token included in the request is invalid."}
            )
        if match["service"] != "execute-api" or not self._signature_holds(method, target, body, lowered, match, secret):
            return Refusal.of("InvalidSignatureException", {"message": INVALID_SIGNATURE})
        resource = self.method_arn(method, urlsplit(target).path)
        if key != self.iam.admin_key:
            decision = self._decide(caller_arn, resource)
            if not decision.allowed:
                reason = " with an explicit deny" if decision.explicit_deny else ""
                return Refusal.of(
                    "AccessDeniedException",
                    {
                        "Message": f"User: {caller_arn} is not authorized to perform: execute-api:Invoke on "
                        f"resource: {resource}{reason}"
                    },
                )
        name = caller_arn.rsplit("/", 1)[-1]
        return {
            "accessKey": key,
            "accountId": self.iam.account,
            "caller": name,
            "user": name,
            "userArn": caller_arn,
        }

    def _decide(self, caller_arn: str, resource: str) -> iam_policy.Decision:
        role_name = caller_arn.split(":assumed-role/", 1)[-1].split("/", 1)[0]
        context = {
            "aws:PrincipalArn": f"arn:aws:iam::{self.iam.account}:role/{role_name}",
            "aws:PrincipalAccount": self.iam.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": self.iam.region,
            "aws:SecureTransport": "false",
        }
        return iam_policy.evaluate(self.iam.policies_of(role_name), "execute-api:Invoke", resource, context)

    @staticmethod
    def _signature_holds(
        method: str,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        match: re.Match[str],
        secret: str,
    ) -> bool:
        """Recompute the signature over exactly the headers the client signed (SigV4, botocore's implementation)."""
        signed = match["headers"].split(";")
        if "host" not in signed or any(name not in headers for name in signed):
            return False
        amz_date = headers.get("x-amz-date", "")
        if not amz_date.startswith(match["date"]):
            return False
        request = AWSRequest(
            method=method.upper(),
            url=f"http://{headers['host']}{target}",
            data=body,
            headers={name: headers[name] for name in signed},
        )
        request.context["timestamp"] = amz_date
        credentials = Credentials(match["key"], secret, headers.get("x-amz-security-token"))
        signer = SigV4Auth(credentials, match["service"], match["region"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        return expected == match["signature"]
