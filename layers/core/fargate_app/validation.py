"""Step ValidateRequest: everything that can be known before the first write, for every start (console, API, CLI).

First the request model (the API's rules and messages), then what only the account can tell: the cluster exists, is
ACTIVE and runs a Kubernetes version the app's objects need; requested subnets exist in its VPC and are private
(or the cluster has private subnets); a new Fargate profile, if the app needs one, fits EKS's quota; the credential
secret exists; the cache rule EnsureCacheRule would reuse is
for the upstream and pulls with the request's credential, and an image from another account's ECR registry has the
rule it needs. Each refusal is a named permanent error, and nothing has been created when it comes.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from fargate_app.aws.ecr import check_cache_rule, check_secret
from fargate_app.aws.eks import (
    check_kubernetes_version,
    check_profile_quota,
    check_subnets,
    describe_active_cluster,
)
from fargate_app.config import Settings
from fargate_app.errors import InvalidRequest
from fargate_app.inventory import (
    LISTING,
    PROVISIONING,
    UPDATING,
    app_key,
    canonical_json,
    last_good_revision,
    read_item,
    refuse_while_another_runs,
    request_hash,
)
from fargate_app.models import CALLER, ProvisionRequest, StepModel, parse_request_for

CONSOLE_CALLER = "console"
# The API's execution input: the request and who asked (from API Gateway's request context, never from the body).
# ``previous`` (an update's last good revision) is read from the app's item; an input that carries it (an execution
# started by an earlier version of the API) is taken as given.
API_INPUT_KEYS = frozenset({"request", "caller", "previous"})


def is_api_input(document: Any) -> TypeGuard[dict[str, Any]]:
    """A v1 request has no field named "request": a document that has one, beside only the API's other keys, is the
    API's execution input; a console start's input is the request itself."""
    return isinstance(document, dict) and "request" in document and set(document) <= API_INPUT_KEYS


class ValidatedRequest(StepModel):
    """The state the provision workflow carries from here on: the normalised request, the execution's ARN, who
    asked for it (the API caller's principal ARN, or ``console``) and, for an update, the last good revision: the
    ApplyApp input of the app's last successful provision, which Compensate applies again if the update fails at or
    after ApplyApp. It is carried as given and checked only if it is needed: a revision that today's rules would
    refuse must still be restorable, or at least never turn a failed update into a deleted app. ``inventory`` is what
    the start records in the app inventory (``fargate_app.inventory``)."""

    request: ProvisionRequest
    execution_arn: str
    caller: str = CONSOLE_CALLER
    previous: dict[str, Any] | None = None
    inventory: RevisionPlan


class RevisionPlan(StepModel):
    """What the start's record writes (statemachine/provision.asl.json ``RecordProvisionStart``): the values of the
    item, and ``version``, the item's version this plan was made from (0: no item yet), which the write requires."""

    key: str
    cluster_name: str
    namespace: str
    app_name: str
    cluster_namespace: str
    listing: str = LISTING
    app_state: str
    revision: str  # DynamoDB's number type travels as a string
    request_hash: str
    request_json: str
    requested_image: str
    caller: str
    version: str
    next_version: str


def plan_revision(request: ProvisionRequest, caller: str, item: dict[str, Any]) -> RevisionPlan:
    """The revision a provision of ``request`` makes from the app's ``item`` (empty: none yet): the item's revision
    again when the request is the one it records (a retry, a replay), else the next one; UPDATING when the app has a
    last good revision to keep."""
    document = request.to_json()
    digest = request_hash(document)
    revision = int(item.get("revision", 0))
    if digest != item.get("requestHash"):
        revision += 1
    version = int(item.get("version", 0))
    return RevisionPlan(
        key=app_key(request.cluster, request.namespace, request.app),
        cluster_name=request.cluster,
        namespace=request.namespace,
        app_name=request.app,
        cluster_namespace=f"{request.cluster}/{request.namespace}",
        app_state=UPDATING if item.get("lastGood") else PROVISIONING,
        revision=str(max(revision, 1)),
        request_hash=digest,
        request_json=canonical_json(document),
        requested_image=request.image,
        caller=caller,
        version=str(version),
        next_version=str(version + 1),
    )


def validate_start(settings: Settings, event: dict[str, Any]) -> ValidatedRequest:
    """Event: ``{"request": <the execution's input>, "executionArn"}``; the input is the request itself (console) or
    ``{"request": ...}`` (the API).

    Raises:
        InvalidRequest: naming every field that breaks a rule, and the rule.
        ClusterNotFound, ClusterNotActive, ClusterVersionUnsupported, SubnetNotFound, SubnetNotPrivate, ProfileQuotaExceeded,
            UpstreamCredentialInvalid, CacheRuleConflict, CacheRuleMissing: what the account says, before anything is created.
        AppBusy: another execution of the app is running.
        AwsThrottled: retried by the state.
        InventoryMisconfigured, PermanentError: the app inventory cannot be read.
    """
    raw = event.get("request")
    caller = CONSOLE_CALLER
    previous = None
    if is_api_input(raw):
        caller = str(raw.get("caller") or CONSOLE_CALLER)
        if not CALLER.fullmatch(caller):
            raise InvalidRequest.of("caller", "must be 'console' or the IAM principal ARN API Gateway reported")
        previous = raw.get("previous")
        if previous is not None and not isinstance(previous, dict):
            raise InvalidRequest.of("previous", "must be the last good revision's ApplyApp input (a JSON object)")
        raw = raw["request"]
    request = parse_request_for(settings, raw)
    check_in_account(settings, request)
    execution_arn = str(event.get("executionArn", ""))
    # The app's item (one consistent read): refused while another execution of the app runs (the item's version
    # moves on when it records itself, so the start's lock would not stop this one, which came after); else the
    # revision this start makes and the last good revision a failed update applies again, however it was started.
    item = read_item(settings, app_key(request.cluster, request.namespace, request.app)) or {}
    refuse_while_another_runs(item, execution_arn)
    return ValidatedRequest(
        request=request,
        execution_arn=execution_arn,
        caller=caller,
        previous=previous if previous is not None else last_good_revision(item),
        inventory=plan_revision(request, caller, item),
    )


def check_in_account(settings: Settings, request: ProvisionRequest) -> None:
    """The checks against the account (read-only calls). Raises: as ``validate_start``."""
    cluster = describe_active_cluster(request.cluster)
    check_kubernetes_version(cluster)
    subnets = check_subnets(request, cluster)
    check_profile_quota(settings, request, subnets)
    if request.credential_arn:
        check_secret(request.credential_arn)
    check_cache_rule(settings, request)
