"""ECR pull-through-cache rules, registry tokens and cache repositories: what moto's ECR lacks.

Sources (cited in docs/sandbox.md): ECR API reference for CreatePullThroughCacheRule (prefix length 2–30 and pattern,
the ``upstreamRegistryUrl`` syntax per upstream, ``credentialArn`` pattern), DescribePullThroughCacheRules,
DeletePullThroughCacheRule, ValidatePullThroughCacheRule and GetAuthorizationToken; the error texts are the API
reference's own descriptions of each exception; ECR user guide "Creating a pull through cache rule" (Docker Hub,
GitHub, GitLab and Azure need a Secrets Manager secret whose name starts with ``ecr-pullthroughcache/``, holding
``username`` and ``accessToken``) and "Using pull through cache rules" (the repository ``<prefix>/<upstream repo>`` is
created on the first pull).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fargate_sandbox.aws_protocol import AwsError, AwsRequest, service_model
from fargate_sandbox.iam_enforcement import Authorizer
from fargate_sandbox.moto_backend import MotoBackend

HANDLED_OPERATIONS = frozenset(
    {
        "CreatePullThroughCacheRule",
        "DescribePullThroughCacheRules",
        "DeletePullThroughCacheRule",
        "ValidatePullThroughCacheRule",
        "GetAuthorizationToken",
    }
)
_shapes = service_model("ecr").shape_for
PREFIX_SHAPE = _shapes("PullThroughCacheRuleRepositoryPrefix")
CREDENTIAL_SHAPE = _shapes("CredentialArn")
UPSTREAM_KINDS: list[str] = list(_shapes("UpstreamRegistry").enum)
# upstreamRegistryUrl syntax per upstream (API reference, CreatePullThroughCacheRule).
FIXED_UPSTREAM_URLS = {
    "public.ecr.aws": "ecr-public",
    "registry-1.docker.io": "docker-hub",
    "ghcr.io": "github-container-registry",
    "registry.gitlab.com": "gitlab-container-registry",
    "registry.k8s.io": "k8s",
    "quay.io": "quay",
    "cgr.dev": "chainguard",
}
AZURE_URL = re.compile(r"^[a-z0-9-]+\.azurecr\.io$")
# Another private ECR registry: <account>.dkr.ecr.<region>.amazonaws.com (ECR user guide, "ECR to ECR pull through
# cache"), pulled with the rule's customRoleArn, which a registry of another account requires.
ECR_URL = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$")
CREDENTIAL_REQUIRED = frozenset(
    {"docker-hub", "github-container-registry", "gitlab-container-registry", "azure-container-registry", "chainguard"}
)
TOKEN_LIFETIME_SECONDS = 12 * 3600  # GetAuthorizationToken: "valid for 12 hours"
PULL_THROUGH_TAG = "ecr:pull-through-cache-prefix"
Response = tuple[int, dict[str, str], bytes]


class EcrError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error = AwsError(code, message, 400)


@dataclass(frozen=True)
class CacheRule:
    prefix: str
    upstream_url: str
    upstream_kind: str
    credential_arn: str | None
    created_at: float
    custom_role_arn: str | None = None  # ECR-to-ECR: the role ECR assumes to pull from the upstream registry

    def to_api(self, registry_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ecrRepositoryPrefix": self.prefix,
            "upstreamRegistryUrl": self.upstream_url,
            "createdAt": self.created_at,
            "registryId": registry_id,
            "upstreamRegistry": self.upstream_kind,
            "updatedAt": self.created_at,
        }
        if self.credential_arn:
            answer["credentialArn"] = self.credential_arn
        if self.custom_role_arn:
            answer["customRoleArn"] = self.custom_role_arn
        return answer


def _validation_errors(params: dict[str, Any]) -> list[str]:
    """AWS's request validation, in its words ("Value 'x' at 'field' failed to satisfy constraint: ...")."""
    errors = []
    prefix = params.get("ecrRepositoryPrefix")
    if isinstance(prefix, str):
        if len(prefix) < PREFIX_SHAPE.metadata["min"]:
            errors.append(
                f"Value '{prefix}' at 'ecrRepositoryPrefix' failed to satisfy constraint: Member must have length greater than or equal to 2"
            )
        if len(prefix) > PREFIX_SHAPE.metadata["max"]:
            errors.append(
                f"Value '{prefix}' at 'ecrRepositoryPrefix' failed to satisfy constraint: Member must have length less than or equal to 30"
            )
        if not re.match(PREFIX_SHAPE.metadata["pattern"], prefix):
            errors.append(
                f"Value '{prefix}' at 'ecrRepositoryPrefix' failed to satisfy constraint: Member must satisfy regular expression pattern: {PREFIX_SHAPE.metadata['pattern']}"
            )
    kind = params.get("upstreamRegistry")
    if kind is not None and kind not in UPSTREAM_KINDS:
        errors.append(
            f"Value '{kind}' at 'upstreamRegistry' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(UPSTREAM_KINDS)}]"
        )
    arn = params.get("credentialArn")
    if arn is not None and not re.match(CREDENTIAL_SHAPE.metadata["pattern"], arn):
        errors.append(
            f"Value '{arn}' at 'credentialArn' failed to satisfy constraint: Member must satisfy regular expression pattern: {CREDENTIAL_SHAPE.metadata['pattern']}"
        )
    return errors


def _raise_validation(errors: list[str]) -> None:
    if errors:
        count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
        raise EcrError("ValidationException", count + "; ".join(errors))


def upstream_kind_for_url(url: str) -> str | None:
    if url in FIXED_UPSTREAM_URLS:
        return FIXED_UPSTREAM_URLS[url]
    if AZURE_URL.match(url):
        return "azure-container-registry"
    if ECR_URL.match(url):
        return "ecr"
    return None


class PullThroughCache:
    """Rules, registry tokens and cache repositories of the sandbox's private registry."""

    def __init__(
        self,
        moto: MotoBackend,
        registry_url: Callable[[], str],
        expected_credentials: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``expected_credentials``: upstream URL → the {"username", "accessToken"} its seeded registry accepts."""
        self._moto = moto
        self._registry_url = registry_url
        self._expected = expected_credentials or {}
        self._rules: dict[str, CacheRule] = {}
        self._tokens: dict[str, tuple[float, str | None]] = {}  # password → (expiry, the access key it was issued to)
        self._cached_digests: dict[str, set[str]] = {}
        self._cached_tags: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @property
    def registry_id(self) -> str:
        return self._moto.account_id

    # --- API --------------------------------------------------------------------------------------------------------
    def handle(self, request: AwsRequest) -> Response:
        """Answer an ECR operation of HANDLED_OPERATIONS. Raises EcrError with AWS's code and message."""
        params = request.json_body()
        if request.operation == "GetAuthorizationToken":
            answer = self._GetAuthorizationToken(params, Authorizer.access_key(request))
        else:
            answer = getattr(self, f"_{request.operation}")(params)
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(answer).encode()

    def _CreatePullThroughCacheRule(self, params: dict[str, Any]) -> dict[str, Any]:
        errors = _validation_errors(params)
        for required in ("ecrRepositoryPrefix", "upstreamRegistryUrl"):
            if not params.get(required):
                errors.append(f"Value null at '{required}' failed to satisfy constraint: Member must not be null")
        _raise_validation(errors)
        url = params["upstreamRegistryUrl"]
        kind = upstream_kind_for_url(url)
        if kind is None or (params.get("upstreamRegistry") not in (None, kind)):
            raise EcrError(
                "UnsupportedUpstreamRegistryException",
                f"The upstream registry URL {url} is invalid. Specify a valid upstream registry URL and try again",
            )
        arn = params.get("credentialArn")
        if kind in CREDENTIAL_REQUIRED and not arn:
            raise EcrError(
                "UnsupportedUpstreamRegistryException",
                "The specified upstream registry requires authentication. Specify a valid Secrets Manager ARN",
            )
        if arn:
            self._read_secret(arn)
        with self._lock:
            if params["ecrRepositoryPrefix"] in self._rules:
                raise EcrError(
                    "PullThroughCacheRuleAlreadyExistsException",
                    "A pull through cache rule with these settings already exists for the private registry.",
                )
            rule = CacheRule(
                params["ecrRepositoryPrefix"], url, kind, arn, round(time.time(), 3), params.get("customRoleArn")
            )
            self._rules[rule.prefix] = rule
        answer = rule.to_api(self.registry_id)
        answer.pop("updatedAt")
        return answer

    def _DescribePullThroughCacheRules(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            wanted = params.get("ecrRepositoryPrefixes")
            if wanted:
                missing = [prefix for prefix in wanted if prefix not in self._rules]
                if missing:
                    raise EcrError("PullThroughCacheRuleNotFoundException", _NOT_FOUND)
                rules = [self._rules[prefix] for prefix in wanted]
            else:
                rules = sorted(self._rules.values(), key=lambda rule: rule.prefix)
        start = int(params.get("nextToken") or 0)
        size = int(params.get("maxResults") or 100)
        answer: dict[str, Any] = {
            "pullThroughCacheRules": [r.to_api(self.registry_id) for r in rules[start : start + size]]
        }
        if start + size < len(rules):
            answer["nextToken"] = str(start + size)
        return answer

    def _DeletePullThroughCacheRule(self, params: dict[str, Any]) -> dict[str, Any]:
        _raise_validation(_validation_errors(params))
        with self._lock:
            rule = self._rules.pop(params.get("ecrRepositoryPrefix", ""), None)
        if rule is None:
            raise EcrError("PullThroughCacheRuleNotFoundException", _NOT_FOUND)
        answer = rule.to_api(self.registry_id)
        answer.pop("upstreamRegistry")
        answer.pop("updatedAt")
        return answer

    def _ValidatePullThroughCacheRule(self, params: dict[str, Any]) -> dict[str, Any]:
        _raise_validation(_validation_errors(params))
        with self._lock:
            rule = self._rules.get(params.get("ecrRepositoryPrefix", ""))
        if rule is None:
            raise EcrError("PullThroughCacheRuleNotFoundException", _NOT_FOUND)
        failure = self._credential_failure(rule)
        answer: dict[str, Any] = {
            "ecrRepositoryPrefix": rule.prefix,
            "registryId": self.registry_id,
            "upstreamRegistryUrl": rule.upstream_url,
            "isValid": failure is None,
        }
        if rule.credential_arn:
            answer["credentialArn"] = rule.credential_arn
        if failure:
            answer["failure"] = failure
        return answer

    def _GetAuthorizationToken(self, params: dict[str, Any], access_key: str | None = None) -> dict[str, Any]:
        import base64

        password = secrets.token_urlsafe(32)
        expires = time.time() + TOKEN_LIFETIME_SECONDS
        with self._lock:
            # The token carries its caller's identity: each registry request is authorized as that principal.
            self._tokens[password] = (expires, access_key)
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        registries = params.get("registryIds") or [self.registry_id]
        return {
            "authorizationData": [
                {"authorizationToken": token, "expiresAt": round(expires, 3), "proxyEndpoint": self._registry_url()}
                for _ in registries
            ]
        }

    # --- used by the registry front ---------------------------------------------------------------------------------
    def password_valid(self, password: str) -> bool:
        """True for a password this sandbox issued through GetAuthorizationToken that has not expired."""
        return self.token_owner(password) is not None

    def token_owner(self, password: str) -> str | None:
        """The access key a valid (issued, unexpired) password was issued to, else None."""
        with self._lock:
            issued = self._tokens.get(password)
        if issued is None or issued[0] <= time.time():
            return None
        return issued[1] or ""

    def is_imported(self, repository: str, reference: str) -> bool:
        """Whether a pull of ``reference`` (tag or digest) is served from the cache without an import."""
        with self._lock:
            return reference in self._cached_digests.get(repository, set()) or reference in self._cached_tags.get(
                repository, set()
            )

    def repository_exists(self, repository: str) -> bool:
        with self._lock:
            return repository in self._cached_digests

    def rule_for(self, repository: str) -> tuple[CacheRule, str] | None:
        """(rule, upstream repository) for ``<prefix>/<repo>``: the longest matching prefix wins."""
        with self._lock:
            for prefix in sorted(self._rules, key=len, reverse=True):
                if repository.startswith(prefix.rstrip("/") + "/"):
                    return self._rules[prefix], repository[len(prefix.rstrip("/")) + 1 :]
        return None

    def record_pull(self, repository: str, reference: str, manifest: bytes, media_type: str) -> None:
        """First pull creates the cache repository; every pulled manifest becomes an image ECR can describe."""
        ecr = self._moto.client("ecr")
        rule = self.rule_for(repository)
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(
                repositoryName=repository,
                tags=[{"Key": PULL_THROUGH_TAG, "Value": rule[0].prefix if rule else ""}],
            )
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        # ECR imports an image index together with the manifests it lists, so those are pullable by digest next.
        try:
            children = {str(entry["digest"]) for entry in json.loads(manifest).get("manifests", [])}
        except (ValueError, TypeError, KeyError, AttributeError):
            children = set()
        with self._lock:
            self._cached_digests.setdefault(repository, set()).update({digest, *children})
            if not reference.startswith("sha256:"):
                self._cached_tags.setdefault(repository, set()).add(reference)
        put: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": manifest.decode("utf-8"),
            "imageManifestMediaType": media_type,
            "imageDigest": digest,
        }
        if not reference.startswith("sha256:"):
            put["imageTag"] = reference
        with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
            ecr.put_image(**put)

    def forget(self, repository: str) -> None:
        """The repository was deleted: nothing of it is cached any more."""
        with self._lock:
            self._cached_digests.pop(repository, None)
            self._cached_tags.pop(repository, None)

    def is_cached(self, repository: str, digest: str) -> bool:
        """Whether a pull by ``digest`` can be served: the cache resolves a digest only for what a pull by tag
        imported (the rule docs/design.md §6.8 and the sandbox issue pin: a pull by digest of an uncached image fails).
        The ECR documentation only shows pulls by tag through a cache rule; a first pull by digest is the case
        this rule makes fail loudly in the sandbox rather than succeed silently."""
        with self._lock:
            return digest in self._cached_digests.get(repository, set())

    # --- credentials ------------------------------------------------------------------------------------------------
    def _read_secret(self, arn: str) -> str:
        sm = self._moto.client("secretsmanager")
        try:
            return str(sm.get_secret_value(SecretId=arn).get("SecretString") or "")
        except sm.exceptions.ResourceNotFoundException as exc:
            raise EcrError(
                "SecretNotFoundException",
                "The ARN of the secret specified in the pull through cache rule was not found. Update the pull "
                "through cache rule with a valid secret ARN and try again.",
            ) from exc

    def _credential_failure(self, rule: CacheRule) -> str | None:
        ecr = ECR_URL.match(rule.upstream_url)
        if ecr and ecr["account"] != self.registry_id and not rule.custom_role_arn:
            # ECR user guide, "ECR to ECR pull through cache": another account's registry is pulled with a role.
            return f"A role (customRoleArn) is required to pull from the registry of account {ecr['account']}."
        if not rule.credential_arn:
            return None
        try:
            content = json.loads(self._read_secret(rule.credential_arn))
        except EcrError:
            return "The secret referenced by the pull through cache rule no longer exists."
        except ValueError:
            content = None
        if not isinstance(content, dict) or not {"username", "accessToken"} <= content.keys():
            return "The secret must be JSON with the keys username and accessToken."
        expected = self._expected.get(rule.upstream_url)
        if expected is not None and (content["username"], content["accessToken"]) != (
            expected["username"],
            expected["accessToken"],
        ):
            return f"Unable to authenticate with the upstream registry {rule.upstream_url} using the credentials in the secret."
        return None


_NOT_FOUND = "The pull through cache rule was not found. Specify a valid pull through cache rule and try again."
