"""Step EnsureCacheRule: the ECR pull-through-cache rule that maps a private prefix to the image's upstream.

ECR API reference: CreatePullThroughCacheRule, DescribePullThroughCacheRules, ValidatePullThroughCacheRule,
DeletePullThroughCacheRule. A rule's prefix is unique per registry; several prefixes may point at one upstream.
"""

from __future__ import annotations

from typing import Any

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.iam import grant_cache_prefix
from fargate_app.config import Settings
from fargate_app.errors import CacheRuleConflict, CacheRuleMissing, SharedResourceReleasing, UpstreamCredentialInvalid
from fargate_app.holders import release_and_delete, rule_resource, taken
from fargate_app.images import Upstream
from fargate_app.models import CacheRule, ProvisionRequest
from fargate_app.observability import logger

CREDENTIAL_ERRORS = frozenset(
    {"SecretNotFoundException", "UnableToAccessSecretException", "UnableToDecryptSecretValueException"}
)


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    ecr = client("ecr")
    token: str | None = None
    with aws_errors("list ECR pull-through-cache rules"):
        while True:
            page = ecr.describe_pull_through_cache_rules(**({"nextToken": token} if token else {}))
            rules.extend(page.get("pullThroughCacheRules", []))
            token = page.get("nextToken")
            if not token:
                return rules


def _rule_exists(prefix: str) -> bool:
    with aws_errors(
        f"describe ECR pull-through-cache rule {prefix!r}", absent={"PullThroughCacheRuleNotFoundException"}
    ) as gone:
        client("ecr").describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])
    return not gone.code


def _pick_rule(request: ProvisionRequest, upstream: Upstream, rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rule to reuse: the requested (or default) prefix when it is already a rule for the upstream; without a
    requested prefix, any rule for the upstream that pulls with the request's credential (or any, without one).

    Raises:
        CacheRuleConflict: the prefix is a rule for another upstream, or pulls with another credential.
    """
    by_prefix = {rule["ecrRepositoryPrefix"]: rule for rule in rules}
    wanted = request.effective_cache_prefix
    rule = by_prefix.get(wanted)
    if rule is not None:
        if rule["upstreamRegistryUrl"] != upstream.registry_url:
            raise CacheRuleConflict(
                f"ECR prefix {wanted!r} is already a pull-through-cache rule for {rule['upstreamRegistryUrl']}, "
                f"not {upstream.registry_url}: choose another cachePrefix"
            )
        if not _pulls_with(rule, request.credential_arn):
            # A rule's credential cannot be changed by reusing it: pulls would go out as the rule's account.
            raise CacheRuleConflict(
                f"ECR prefix {wanted!r} pulls from {upstream.registry_url} with credential "
                f"{rule.get('credentialArn') or '(none)'}, not credentialArn {request.credential_arn}: give that "
                "credentialArn, or choose another cachePrefix for a rule of your own"
            )
        return rule
    if request.cache_prefix is None:
        same_upstream = sorted(
            (
                r
                for r in rules
                if r["upstreamRegistryUrl"] == upstream.registry_url and _pulls_with(r, request.credential_arn)
            ),
            key=lambda r: r["ecrRepositoryPrefix"],
        )
        if same_upstream:
            return same_upstream[0]
    return None


def _pulls_with(rule: dict[str, Any], credential_arn: str | None) -> bool:
    """Whether the rule pulls with the request's credential; a request without one takes the rule's.

    Secrets Manager appends ``-`` and six random characters to a secret's name in its full ARN, and a partial ARN
    (without them) names the same secret (Secrets Manager user guide, "Finding secrets from a partial ARN").
    """
    if credential_arn is None:
        return True
    held = rule.get("credentialArn")
    if held is None:
        return False
    return _same_secret(held, credential_arn) or _same_secret(credential_arn, held)


def _same_secret(full_arn: str, arn: str) -> bool:
    """``arn`` names the secret of ``full_arn``: equal, or ``full_arn`` minus its ``-XXXXXX`` suffix."""
    return full_arn == arn or (len(full_arn) == len(arn) + 7 and full_arn.startswith(f"{arn}-"))


def check_secret(credential_arn: str) -> None:
    """Raises: UpstreamCredentialInvalid when the secret does not exist; AccessDenied without the grant."""

    def missing(_: str) -> UpstreamCredentialInvalid:
        return UpstreamCredentialInvalid(
            f"credential secret {credential_arn} does not exist: create it with the upstream registry's username and "
            "accessToken"
        )

    # AccessDenied is the stack's grant (secretsmanager:DescribeSecret on ecr-pullthroughcache/*), not the input.
    with aws_errors(f"describe secret {credential_arn}", raises={"ResourceNotFoundException": missing}):
        client("secretsmanager").describe_secret(SecretId=credential_arn)


def check_cache_rule(settings: Settings, request: ProvisionRequest) -> None:
    """Read-only, before anything is created: the rule EnsureCacheRule would reuse or create can serve the request.

    An image from another account's ECR registry is pulled with an IAM role ECR assumes (the rule's customRoleArn),
    which this stack does not manage: that rule must exist already, named by ``cachePrefix``.

    Raises:
        CacheRuleConflict: the prefix is bound to another upstream or pulls with another credential.
        CacheRuleMissing: no rule for another account's registry.
    """
    upstream = request.image_reference.upstream
    assert upstream is not None  # the request model only admits cacheable upstreams
    rules = _rules()
    _pick_rule(request, upstream, rules)
    if upstream.kind != "ecr" or upstream.host.startswith(f"{settings.account_id}."):
        return
    wanted = request.cache_prefix
    if not any(r["upstreamRegistryUrl"] == upstream.registry_url and r["ecrRepositoryPrefix"] == wanted for r in rules):
        raise CacheRuleMissing(
            f"images from {upstream.host} (another account's ECR registry) need a pull-through-cache rule whose "
            "customRoleArn names a role ECR assumes to pull from it: create it (aws ecr "
            "create-pull-through-cache-rule --upstream-registry ecr --custom-role-arn …) and give its prefix as "
            "cachePrefix"
        )


def ensure_cache_rule(
    settings: Settings, request: ProvisionRequest, role_name: str | None = None, holder: str | None = None
) -> CacheRule:
    """Create or reuse the pull-through-cache rule for the request's image, then validate it.

    When an existing rule for the upstream is reused under another prefix than the one the pod execution role was
    granted, ``role_name`` is granted that prefix too, so the first pull by a pod can import the image. ``holder``
    (the app) takes the rule before it is reused or created (fargate_app/holders.py); a reused one is looked up
    again after the take, in case a release deleted it in between.

    Raises:
        CacheRuleConflict: the prefix is bound to another upstream.
        UpstreamCredentialInvalid: the credential secret is missing, or ECR cannot authenticate with it.
        SharedResourceReleasing: the release of the rule's last holder is deleting it; retried.
    """
    upstream = request.image_reference.upstream
    assert upstream is not None  # the request model only admits cacheable upstreams
    rule = _pick_rule(request, upstream, _rules())
    prefix = rule["ecrRepositoryPrefix"] if rule is not None else request.effective_cache_prefix
    with taken(settings, rule_resource(prefix), holder):
        if rule is not None and holder is not None and not _rule_exists(prefix):
            raise SharedResourceReleasing(f"ECR pull-through-cache rule {prefix!r} was deleted meanwhile; retried")
        return _ensure_rule(settings, request, upstream, rule, role_name, holder)


def _ensure_rule(
    settings: Settings,
    request: ProvisionRequest,
    upstream: Upstream,
    rule: dict[str, Any] | None,
    role_name: str | None,
    holder: str | None,
) -> CacheRule:
    created = False
    if rule is None:
        rule, created = _create_rule(request, upstream)
    prefix = rule["ecrRepositoryPrefix"]
    validated = _validate(settings, prefix, created=created, holder=holder)
    if role_name and prefix != request.effective_cache_prefix:
        grant_cache_prefix(settings, role_name, prefix)
    logger.info(
        "cache rule ready", extra={"cache_prefix": prefix, "upstream": upstream.registry_url, "rule_created": created}
    )
    return CacheRule(
        ecr_repository_prefix=prefix,
        upstream_registry_url=rule["upstreamRegistryUrl"],
        created=created,
        credential_arn=rule.get("credentialArn"),
        validated=validated,
    )


def _create_rule(request: ProvisionRequest, upstream: Upstream) -> tuple[dict[str, Any], bool]:
    """The new rule and True, or the rule a concurrent execution just created and False."""
    prefix = request.effective_cache_prefix
    params: dict[str, Any] = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": upstream.registry_url,
        "upstreamRegistry": upstream.kind,
    }
    if request.credential_arn:
        check_secret(request.credential_arn)
        params["credentialArn"] = request.credential_arn
    credential_refused = {
        code: lambda message: UpstreamCredentialInvalid(f"ECR cannot use {request.credential_arn}: {message}")
        for code in CREDENTIAL_ERRORS
    }
    with aws_errors(
        f"create ECR pull-through-cache rule {prefix!r}",
        absent={"PullThroughCacheRuleAlreadyExistsException"},
        raises=credential_refused,
    ) as taken:
        return client("ecr").create_pull_through_cache_rule(**params), True
    # Another execution won the race: reuse its rule if it points at the same upstream.
    rule = _pick_rule(request, upstream, _rules())
    if rule is not None:
        return rule, False
    raise CacheRuleConflict(f"ECR prefix {prefix!r}: {taken.message}")


def _validate(settings: Settings, prefix: str, *, created: bool, holder: str | None) -> bool:
    """Ask ECR whether it can reach the upstream with the rule's credential; undo a rule we just made if not (unless
    another app took it meanwhile)."""
    with aws_errors(f"validate ECR pull-through-cache rule {prefix!r}"):
        answer = client("ecr").validate_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
    if answer.get("isValid"):
        return True
    if created:
        if holder is None:
            delete_cache_rule(prefix)
        else:
            release_and_delete(settings, rule_resource(prefix), holder, holder, lambda: delete_cache_rule(prefix))
    raise UpstreamCredentialInvalid(
        f"ECR pull-through-cache rule {prefix!r} for {answer.get('upstreamRegistryUrl')} is not valid: "
        f"{answer.get('failure') or 'no reason given'}; check the credential secret's username and accessToken"
    )


def delete_cache_rule(prefix: str) -> bool:
    """Compensation and clean-up. False when the rule is already gone."""
    with aws_errors(
        f"delete ECR pull-through-cache rule {prefix!r}", absent={"PullThroughCacheRuleNotFoundException"}
    ) as gone:
        client("ecr").delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
    return not gone.code
