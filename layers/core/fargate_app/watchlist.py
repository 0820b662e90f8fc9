"""Step ValidateCacheRule of the warm-cache workflow: a new pull-through-cache rule (the CloudTrail event of
CreatePullThroughCacheRule) is validated, and the images of the watch list for its upstream become the Map's items.

The watch list is one SSM String parameter (``WATCH_LIST_PARAMETER``) holding JSON: upstream registry URL (as in the
rule) → image references relative to that upstream, e.g. ``{"public.ecr.aws": ["nginx/nginx:stable"]}``.
"""

from __future__ import annotations

import json
import os

from pydantic import ConfigDict, Field

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.errors import InvalidRequest, UpstreamCredentialInvalid
from fargate_app.images import InvalidReference, parse_reference, upstream_for_registry_url
from fargate_app.models import ECR_PREFIX, StepModel

DEFAULT_PLATFORM = "linux/amd64"


class RuleParameters(StepModel):
    model_config = ConfigDict(extra="ignore")
    ecr_repository_prefix: str = Field(min_length=2, max_length=30, pattern=ECR_PREFIX.pattern)
    upstream_registry_url: str


class CloudTrailDetail(StepModel):
    model_config = ConfigDict(extra="ignore")
    event_name: str = Field(pattern="^CreatePullThroughCacheRule$")
    request_parameters: RuleParameters


class ValidateCacheRuleEvent(StepModel):
    model_config = ConfigDict(extra="ignore")
    detail: CloudTrailDetail


class WatchedImage(StepModel):
    image: str
    cache_prefix: str
    platform: str = DEFAULT_PLATFORM


class ValidatedRule(StepModel):
    rule: RuleParameters
    images: list[WatchedImage]
    skipped: list[str] = Field(default_factory=list)


def _watch_list(upstream_registry_url: str) -> list[str]:
    name = os.environ.get("WATCH_LIST_PARAMETER", "")
    if not name:
        return []
    with aws_errors(f"read SSM parameter {name}", absent={"ParameterNotFound"}) as missing:
        value = client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    if missing.code:
        return []
    try:
        watched = json.loads(value)
    except ValueError as exc:
        raise InvalidRequest.of(f"SSM parameter {name}", f"not JSON ({exc})") from None
    if not isinstance(watched, dict) or not all(isinstance(v, list) for v in watched.values()):
        raise InvalidRequest.of(f"SSM parameter {name}", "must map an upstream registry URL to a list of images")
    return [str(image) for image in watched.get(upstream_registry_url, [])]


def validate_cache_rule(event: ValidateCacheRuleEvent) -> ValidatedRule:
    """Validate the new rule with ECR, then list the watched images of its upstream.

    Raises:
        UpstreamCredentialInvalid: ECR cannot reach the upstream with the rule's credential.
        InvalidRequest: the watch-list parameter is malformed.
    """
    rule = event.detail.request_parameters
    with aws_errors(f"validate ECR pull-through-cache rule {rule.ecr_repository_prefix!r}"):
        answer = client("ecr").validate_pull_through_cache_rule(ecrRepositoryPrefix=rule.ecr_repository_prefix)
    if not answer.get("isValid"):
        raise UpstreamCredentialInvalid(
            f"pull-through-cache rule {rule.ecr_repository_prefix!r} for {rule.upstream_registry_url} is not valid: "
            f"{answer.get('failure') or 'no reason given'}"
        )
    upstream = upstream_for_registry_url(rule.upstream_registry_url)
    images: list[WatchedImage] = []
    skipped: list[str] = []
    for relative in _watch_list(rule.upstream_registry_url):
        try:
            reference = parse_reference(f"{upstream.host}/{relative}" if upstream else relative)
        except InvalidReference as exc:
            skipped.append(f"{relative}: {exc}")
            continue
        images.append(WatchedImage(image=str(reference), cache_prefix=rule.ecr_repository_prefix))
    return ValidatedRule(rule=rule, images=images, skipped=skipped)
