"""The v1 request (docs/design.md §2) and the models each step reads and returns (docs/design.md §3).

JSON field names are camelCase (the API contract); Python attributes are snake_case. Every model forbids unknown
fields so that a typo in a request is an error, not a silently ignored setting.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from fargate_app.errors import InvalidRequest
from fargate_app.fargate_sizes import fargate_size_for, parse_quantity
from fargate_app.images import (
    SUPPORTED_UPSTREAMS,
    ImageReference,
    InvalidReference,
    parse_reference,
    upstream_for_host,
)

if TYPE_CHECKING:
    from fargate_app.config import Settings

# Kubernetes apimachinery validation (IsDNS1123Label, IsDNS1035Label, IsQualifiedName, IsValidLabelValue).
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# The API server's Ingress path rules for pathType Prefix/Exact (pkg/apis/networking/validation/validation.go,
# invalidPathSequences and invalidPathSuffixes).
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# EKS CreateCluster/CreateFargateProfile name pattern.
EKS_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]*$")
SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
# ECR CreatePullThroughCacheRule ecrRepositoryPrefix pattern (API reference), length 2–30.
ECR_PREFIX = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):secret:(?P<name>[\w/+=.@-]+)$"
)
CACHE_SECRET_PREFIX = "ecr-pullthroughcache/"  # noqa: S105 - a name prefix, not a secret
PLATFORM = re.compile(r"^linux/(amd64|arm64)$")
# What EKS Fargate runs (aws/containers-roadmap#1629: no Arm); the stack may allow more (FARGATE_PLATFORMS).
FARGATE_PLATFORMS = ("linux/amd64",)
MAX_SELECTOR_LABELS = 5
RESERVED_LABEL_PREFIXES = ("kubernetes.io/", "k8s.io/", "eks.amazonaws.com/")
APP_NAME_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _dns1123_label(value: str) -> str:
    if len(value) > 63 or not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            "must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending "
            "with a letter or digit"
        )
    return value


def _eks_name(value: str) -> str:
    if not 1 <= len(value) <= 100 or not EKS_NAME.fullmatch(value):
        raise ValueError(
            "must be an EKS cluster name: 1-100 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def validate_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"label key {key!r}: prefix must be a DNS subdomain of at most 253 characters")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: name must be at most 63 characters of letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit"
        )


def validate_label_value(key: str, value: str) -> None:
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label {key!r}: value must be at most 63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def _cross_field(field: str, rule: str) -> PydanticCustomError:
    """A rule that spans fields, blamed on ``field`` (a model validator's own location is the whole model)."""
    return PydanticCustomError("cross_field", rule, {"field": field})


DnsLabel = Annotated[str, AfterValidator(_dns1123_label)]
ClusterName = Annotated[str, AfterValidator(_eks_name)]


class IngressExpose(ApiModel):
    scheme: Literal["internet-facing", "internal"] = "internet-facing"
    path: str = Field(default="/", pattern=r"^/[A-Za-z0-9/._~%!$&'()*+,;=:@-]*$", max_length=256)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        """The Ingress is applied with pathType Prefix: the API server's rules for it."""
        for sequence in INVALID_PATH_SEQUENCES:
            if sequence in value:
                raise ValueError(f"must not contain '{sequence}' (Kubernetes Ingress path rule)")
        for suffix in INVALID_PATH_SUFFIXES:
            if value.endswith(suffix):
                raise ValueError(f"cannot end with '{suffix}' (Kubernetes Ingress path rule)")
        return value


class Expose(ApiModel):
    ingress: IngressExpose | None = None


# Who asked for an execution: the console, or an IAM/STS principal ARN as API Gateway reports it (userArn).
CALLER = re.compile(r"^(console|arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\w+=,.@/:-]{1,1024})$")


class ProvisionRequest(ApiModel):
    """Run ``image`` as ``app`` in ``namespace`` of EKS cluster ``cluster`` on Fargate (docs/design.md §2)."""

    cluster: ClusterName
    app: DnsLabel
    namespace: DnsLabel
    image: str = Field(max_length=512)
    replicas: int = Field(default=1, ge=1, le=50, strict=True)
    port: int | None = Field(default=None, ge=1, le=65535, strict=True)
    cpu: str = "250m"
    memory: str = "512Mi"
    labels: dict[str, str] = Field(default_factory=dict)
    subnets: list[str] | None = Field(default=None, min_length=1, max_length=16)
    cache_prefix: str | None = Field(default=None, min_length=2, max_length=30)
    credential_arn: str | None = Field(default=None, max_length=2048)
    platform: str = "linux/amd64"
    expose: Expose | None = None

    @field_validator("image")
    @classmethod
    def _normalise_image(cls, value: str) -> str:
        try:
            reference = parse_reference(value)
        except InvalidReference as exc:
            raise ValueError(f"not a valid image reference: {exc}") from None
        if reference.upstream is None:
            raise ValueError(
                f"registry {reference.registry!r} is not an upstream ECR can cache (supported: {SUPPORTED_UPSTREAMS})"
            )
        if reference.digest and not reference.tag:
            # ECR's pull-through cache serves a digest only once the image was pulled by tag
            # (aws/containers-roadmap#2837): by digest alone, the outcome would depend on what was pulled before.
            raise ValueError(
                "a digest needs its tag too (name:tag@sha256:…): ECR's pull-through cache imports images by tag, "
                "then serves their digests"
            )
        return str(reference)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        cores = parse_quantity(value, allow_milli=True)
        if cores <= 0 or cores > 16:
            raise ValueError("must be more than 0 and at most 16 vCPU, the largest Fargate size")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if parse_quantity(value, allow_milli=False) <= 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_SELECTOR_LABELS:
            raise ValueError(
                f"at most {MAX_SELECTOR_LABELS} labels: with the namespace they form the Fargate "
                "profile selector, which takes at most 5"
            )
        for key, label_value in value.items():
            validate_label_key(key)
            validate_label_value(key, label_value)
            if key in (APP_NAME_LABEL, MANAGED_BY_LABEL) or key.startswith(RESERVED_LABEL_PREFIXES):
                raise ValueError(f"label {key!r} is reserved: the provisioner sets it or Kubernetes/EKS own the prefix")
        return value

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for subnet in value:
            if not SUBNET_ID.fullmatch(subnet):
                raise ValueError(f"{subnet!r} is not a subnet id (subnet- and 8 or 17 hex digits)")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a subnet")
        return sorted(value)

    @field_validator("cache_prefix")
    @classmethod
    def _cache_prefix(cls, value: str | None) -> str | None:
        if value is not None and not ECR_PREFIX.fullmatch(value):
            raise ValueError(
                "must be lowercase letters and digits, separated by '.', '_', '-' or '/' (ECR repository prefix rule)"
            )
        return value

    @field_validator("credential_arn")
    @classmethod
    def _credential_arn(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        match = SECRET_ARN.fullmatch(value)
        if not match:
            raise ValueError(
                "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:…)"
            )
        if not match["name"].startswith(CACHE_SECRET_PREFIX):
            raise ValueError(
                f"the secret's name must start with {CACHE_SECRET_PREFIX!r}, as ECR requires for "
                "pull-through-cache credentials"
            )
        where = info.context or {}
        if where.get("region") and match["region"] != where["region"]:
            raise ValueError(f"the secret must be in region {where['region']}, the region of the cache rule")
        if where.get("account") and match["account"] != where["account"]:
            raise ValueError(f"the secret must be in account {where['account']}, the account of the cache rule")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_not_protected(cls, value: str, info: ValidationInfo) -> str:
        protected = tuple((info.context or {}).get("protected_namespaces") or ())
        if any(fnmatchcase(value, pattern) for pattern in protected):
            raise ValueError(
                f"{value} is a protected namespace (the stack's ProtectedNamespaces: {', '.join(protected)}): "
                "no app may be deployed there, whoever asks"
            )
        return value

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str, info: ValidationInfo) -> str:
        allowed = tuple((info.context or {}).get("platforms") or FARGATE_PLATFORMS)
        if not PLATFORM.fullmatch(value) or value not in allowed:
            raise ValueError(
                f"must be {' or '.join(allowed)}: EKS Fargate runs x86-64 (linux/amd64) pods only "
                "(aws/containers-roadmap#1629), and the stack's FargatePlatforms parameter lists what it accepts"
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ProvisionRequest:
        if fargate_size_for(self.cpu_cores, self.memory_bytes) is None:
            raise _cross_field(
                "memory",
                f"cpu {self.cpu} with memory {self.memory} (+256Mi Fargate reserves) fits no Fargate size "
                "(at most 16 vCPU / 120 GB)",
            )
        upstream = self.image_reference.upstream
        if upstream is not None and upstream.needs_credential and self.credential_arn is None:
            raise _cross_field(
                "credentialArn",
                f"is required for images from {upstream.host}: ECR needs a Secrets Manager "
                f"secret named {CACHE_SECRET_PREFIX}… to pull from it",
            )
        if upstream is not None and not upstream.needs_credential and self.credential_arn is not None:
            raise _cross_field(
                "credentialArn",
                f"must not be given for images from {upstream.host}: ECR pulls from it "
                + ("with an IAM role, not a secret" if upstream.kind == "ecr" else "without credentials"),
            )
        if self.port is not None and not DNS1035_LABEL.fullmatch(self.app):
            # The Service is named after the app, and a Service name is a DNS-1035 label (ValidateServiceName).
            raise _cross_field(
                "app",
                "must start with a letter when port is given: the app's Service takes its name, and a Service name "
                "must be a DNS-1035 label (lower case alphanumeric characters or '-', starting with a letter)",
            )
        if self.expose is not None and self.expose.ingress is not None and self.port is None:
            raise _cross_field(
                "port", "is required with expose.ingress: the Ingress routes to the Service on that port"
            )
        return self

    @property
    def image_reference(self) -> ImageReference:
        return parse_reference(self.image)

    @property
    def cpu_cores(self) -> Decimal:
        return parse_quantity(self.cpu, allow_milli=True)

    @property
    def memory_bytes(self) -> Decimal:
        return parse_quantity(self.memory, allow_milli=False)

    @property
    def pod_labels(self) -> dict[str, str]:
        """The labels every pod of the app carries; the Fargate selector must match them."""
        return {APP_NAME_LABEL: self.app, **self.labels}

    @property
    def holder(self) -> str:
        """The app as it holds shared resources (fargate_app/holders.py): its inventory key, cluster/namespace/app."""
        from fargate_app.inventory import app_key

        return app_key(self.cluster, self.namespace, self.app)

    @property
    def effective_cache_prefix(self) -> str:
        upstream = upstream_for_host(self.image_reference.registry)
        assert upstream is not None  # guaranteed by _normalise_image
        return self.cache_prefix or upstream.default_prefix


def parse_request_for(settings: Settings, data: Any) -> ProvisionRequest:
    """``parse_request`` under the stack's own rules: its account and region, platforms and protected namespaces."""
    return parse_request(
        data,
        region=settings.region,
        account=settings.account_id,
        platforms=settings.platforms,
        protected_namespaces=settings.protected_namespaces,
    )


def parse_request(
    data: Any,
    *,
    region: str | None = None,
    account: str | None = None,
    platforms: tuple[str, ...] = FARGATE_PLATFORMS,
    protected_namespaces: tuple[str, ...] = (),
) -> ProvisionRequest:
    """Validate a v1 request; region/account, when given, bind the credential secret to them; ``platforms`` are
    those the stack accepts; ``protected_namespaces`` (patterns) those no request may deploy into.

    Raises:
        InvalidRequest: naming every field that breaks a rule, and the rule.
    """
    if not isinstance(data, dict):
        raise InvalidRequest.of("request", "must be a JSON object")
    context = {
        "region": region,
        "account": account,
        "platforms": platforms,
        "protected_namespaces": protected_namespaces,
    }
    try:
        return ProvisionRequest.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidRequest(validation_problems(exc)) from None


def validation_problems(exc: ValidationError) -> dict[str, str]:
    """``{"field.path": "rule"}`` (a field's several rules joined by "; "); input values are not echoed (they may
    hold anything)."""
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        location = [str(part) for part in error["loc"]]
        if error["type"] == "cross_field":
            location.append(str(error.get("ctx", {}).get("field")))
        field = ".".join(location) or "request"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (v1 requests accept only the documented fields)"
        problems[field] = f"{problems[field]}; {message}" if field in problems else message
    return problems


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""


def loads_request_document(text: str | bytes, source: str = "body") -> Any:
    """JSON as a request document must be: an object's key given twice is refused (``json`` would keep the last,
    silently), naming the key. ``source`` names the document in the message (the API's body, a request file).

    Raises:
        InvalidRequest: not JSON, or a duplicate key.
    """

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except DuplicateKey as exc:
        raise InvalidRequest.of(
            exc.args[0], f"is given twice in the {source} (a JSON object names each field once)"
        ) from None
    except ValueError as exc:
        # json's message gives the position only (never the input), which helps find the typo.
        raise InvalidRequest.of(source, f"is not valid JSON ({exc})") from None


class StepModel(ApiModel):
    """A step's input or result. Its validator is built when first used (``defer_build``), not at import: each
    function uses one or two of these, and the API none, so no cold start pays for the others."""

    model_config = ConfigDict(defer_build=True)


# --- step results (docs/design.md §3) ---
class PodExecutionRole(StepModel):
    arn: str
    name: str
    created: bool


class ProfileSelector(StepModel):
    namespace: str
    labels: dict[str, str] = Field(default_factory=dict)


class FargateProfile(StepModel):
    """A profile as the workflow tracks it: EnsureFargateProfile (or ReleaseFargateProfile) makes it, the check that
    sees it ACTIVE (or gone) updates ``status``; ``waitingSince`` starts the clock of PROFILE_WAIT_TIMEOUT_SECONDS.

    Unknown fields are ignored: provisions recorded before the poll moved into the state's Retry carry ``attempt``
    and ``nextWaitSeconds``, and their teardown must still read their profile."""

    model_config = ConfigDict(extra="ignore")

    cluster: str
    name: str
    status: str
    created: bool
    selectors: list[ProfileSelector]
    subnets: list[str] = Field(default_factory=list)
    waiting_since: AwareDatetime | None = None


class CacheRule(StepModel):
    ecr_repository_prefix: str
    upstream_registry_url: str
    created: bool
    credential_arn: str | None = None
    validated: bool = False


# --- step inputs: what the state machine passes to each Lambda ---
class RequestEvent(StepModel):
    """A step that needs only the (already validated, normalised) request."""

    model_config = ConfigDict(extra="ignore")  # the state carries earlier results the step does not read
    request: ProvisionRequest

    @classmethod
    def parse(cls, event: Any, *, region: str, account: str) -> Self:
        try:
            return cls.model_validate(event, context={"region": region, "account": account})
        except ValidationError as exc:
            raise InvalidRequest(validation_problems(exc)) from None


class EnsureRoleEvent(RequestEvent):
    execution_arn: str = ""


class EnsureProfileEvent(RequestEvent):
    pod_execution_role: PodExecutionRole
    execution_arn: str = ""


class EnsureCacheRuleEvent(RequestEvent):
    pod_execution_role: PodExecutionRole | None = None


class CheckProfileEvent(StepModel):
    """One poll of a profile: until it is ACTIVE (provision) or gone (teardown; its status becomes DELETED)."""

    model_config = ConfigDict(extra="ignore")
    profile: FargateProfile
    expect: Literal["ACTIVE", "DELETED"] = "ACTIVE"
