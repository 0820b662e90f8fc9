"""EnsureCacheRule with botocore's Stubber on real ECR and Secrets Manager clients.

moto has no pull-through-cache API; the Stubber still validates every request we send against the real service
model, so a wrong parameter name or type fails here as it would in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from request_edits import walkthrough_request
from unit_support import holders_of

from fargate_app.aws.ecr import check_cache_rule, delete_cache_rule, ensure_cache_rule
from fargate_app.config import Settings
from fargate_app.errors import (
    AccessDenied,
    CacheRuleConflict,
    CacheRuleMissing,
    SharedResourceReleasing,
    UpstreamCredentialInvalid,
)
from fargate_app.models import ProvisionRequest, parse_request

SECRET = "arn:aws:secretsmanager:us-west-2:111122223333:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
OTHER_TEAMS_SECRET = "arn:aws:secretsmanager:us-west-2:111122223333:secret:ecr-pullthroughcache/team-b-GhIjKl"
DOCKER_HUB = "docker.io/library/redis:7"
NOW = datetime(2026, 11, 26, tzinfo=UTC)


class SameJson:
    """Matches a JSON string (a parameter the Stubber checks) by what it means, not how it is spelled."""

    def __init__(self, document: Any) -> None:
        self.document = document

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and json.loads(other) == self.document

    def __repr__(self) -> str:
        return f"SameJson({self.document!r})"


class Stubs:
    def __init__(self) -> None:
        self.clients = {name: boto3.client(name, region_name="us-west-2") for name in ("ecr", "secretsmanager", "iam")}
        self.stubbers = {name: Stubber(c) for name, c in self.clients.items()}
        self.ecr, self.secrets, self.iam = (self.stubbers[n] for n in ("ecr", "secretsmanager", "iam"))

    def rules(self, *rules: tuple[str, str] | tuple[str, str, str]) -> None:
        """The account's rules: (prefix, upstream URL[, credential ARN])."""
        self.ecr.add_response(
            "describe_pull_through_cache_rules",
            {
                "pullThroughCacheRules": [
                    {
                        "ecrRepositoryPrefix": prefix,
                        "upstreamRegistryUrl": url,
                        "createdAt": NOW,
                        "registryId": "111122223333",
                        **({"credentialArn": credential[0]} if credential else {}),
                    }
                    for prefix, url, *credential in rules
                ]
            },
            {},
        )

    def create(self, prefix: str, url: str, upstream: str, credential: str | None = None) -> None:
        """CreatePullThroughCacheRule, expected with these parameters, answers the rule it made."""
        with_credential = {"credentialArn": credential} if credential else {}
        self.ecr.add_response(
            "create_pull_through_cache_rule",
            {
                "ecrRepositoryPrefix": prefix,
                "upstreamRegistryUrl": url,
                "createdAt": NOW,
                "registryId": "111122223333",
                "upstreamRegistry": upstream,
                **with_credential,
            },
            {
                "ecrRepositoryPrefix": prefix,
                "upstreamRegistryUrl": url,
                "upstreamRegistry": upstream,
                **with_credential,
            },
        )

    def validate(self, prefix: str, url: str, valid: bool = True, failure: str = "") -> None:
        response = {
            "ecrRepositoryPrefix": prefix,
            "registryId": "111122223333",
            "upstreamRegistryUrl": url,
            "isValid": valid,
        }
        if failure:
            response["failure"] = failure
        self.ecr.add_response("validate_pull_through_cache_rule", response, {"ecrRepositoryPrefix": prefix})


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubs]:
    stubs = Stubs()
    for stubber in stubs.stubbers.values():
        stubber.activate()
    monkeypatch.setattr("fargate_app.aws.ecr.client", stubs.clients.__getitem__)
    monkeypatch.setattr("fargate_app.aws.iam.client", stubs.clients.__getitem__)
    yield stubs
    for stubber in stubs.stubbers.values():
        stubber.assert_no_pending_responses()  # every expected call was made, no more


def request(**changes: Any) -> ProvisionRequest:
    body = walkthrough_request()
    return parse_request({**body, **changes})


def test_creates_and_validates_the_rule_for_the_upstream(settings: Settings, stubs: Stubs) -> None:
    # Given no rule
    stubs.rules()
    stubs.create("ecr-public", "public.ecr.aws", "ecr-public")
    stubs.validate("ecr-public", "public.ecr.aws")
    # When the step runs
    rule = ensure_cache_rule(settings, request())
    # Then the walkthrough's rule exists and is valid
    assert rule.to_json() == {
        "ecrRepositoryPrefix": "ecr-public",
        "upstreamRegistryUrl": "public.ecr.aws",
        "created": True,
        "credentialArn": None,
        "validated": True,
    }


def test_reuses_an_existing_rule_for_the_upstream_under_its_own_prefix(settings: Settings, stubs: Stubs) -> None:
    # Given a rule made by hand for the same upstream under another prefix
    stubs.rules(("quay", "quay.io"), ("public", "public.ecr.aws"))
    stubs.validate("public", "public.ecr.aws")
    # and the pod execution role gets that prefix granted, since it only had the default one
    stubs.iam.add_response(
        "put_role_policy",
        {},
        {
            "RoleName": "FargateAppPodExecution-blog",
            "PolicyName": "pull-through-cache-public",
            "PolicyDocument": SameJson(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "PullThroughCacheFirstPull",
                            "Effect": "Allow",
                            "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                            "Resource": "arn:aws:ecr:us-west-2:111122223333:repository/public/*",
                        }
                    ],
                }
            ),
        },
    )
    rule = ensure_cache_rule(settings, request(), role_name="FargateAppPodExecution-blog")
    assert (rule.ecr_repository_prefix, rule.created) == ("public", False)


def test_requested_prefix_bound_to_another_upstream_is_a_conflict(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("mirror", "quay.io"))
    with pytest.raises(CacheRuleConflict, match=r"'mirror' is already a pull-through-cache rule for quay\.io"):
        ensure_cache_rule(settings, request(cachePrefix="mirror"))


def test_default_prefix_bound_to_another_upstream_is_a_conflict(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("ecr-public", "registry.k8s.io"))
    with pytest.raises(CacheRuleConflict, match="choose another cachePrefix"):
        ensure_cache_rule(settings, request())


def test_credentialed_upstream_checks_the_secret_before_creating(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()
    stubs.secrets.add_response(
        "describe_secret", {"ARN": SECRET, "Name": "ecr-pullthroughcache/docker-hub"}, {"SecretId": SECRET}
    )
    stubs.create("docker-hub", "registry-1.docker.io", "docker-hub", SECRET)
    stubs.validate("docker-hub", "registry-1.docker.io")
    rule = ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))
    assert (rule.upstream_registry_url, rule.credential_arn, rule.created) == ("registry-1.docker.io", SECRET, True)


def test_missing_secret_is_reported_and_no_rule_is_created(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()
    stubs.secrets.add_client_error(
        "describe_secret",
        "ResourceNotFoundException",
        "Secrets Manager can't find it",
        expected_params={"SecretId": SECRET},
    )
    with pytest.raises(UpstreamCredentialInvalid, match=f"credential secret {SECRET} does not exist"):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))
    # (no create_pull_through_cache_rule was stubbed: the Stubber would fail on an unexpected call)


def test_secret_ecr_cannot_use_is_reported(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()
    stubs.secrets.add_response("describe_secret", {"ARN": SECRET}, {"SecretId": SECRET})
    stubs.ecr.add_client_error(
        "create_pull_through_cache_rule", "UnableToDecryptSecretValueException", "The secret cannot be decrypted"
    )
    with pytest.raises(UpstreamCredentialInvalid, match="cannot be decrypted"):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))


def test_misnamed_secret_never_reaches_aws() -> None:
    with pytest.raises(Exception, match="must start with 'ecr-pullthroughcache/'"):
        request(image="redis:7", credentialArn=SECRET.replace("ecr-pullthroughcache/", "dockerhub/"))


def test_invalid_rule_it_created_is_removed_again(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()
    stubs.secrets.add_response("describe_secret", {"ARN": SECRET}, {"SecretId": SECRET})
    stubs.create("docker-hub", "registry-1.docker.io", "docker-hub", SECRET)
    stubs.validate("docker-hub", "registry-1.docker.io", valid=False, failure="Invalid username or access token")
    stubs.ecr.add_response(
        "delete_pull_through_cache_rule", {"ecrRepositoryPrefix": "docker-hub"}, {"ecrRepositoryPrefix": "docker-hub"}
    )
    with pytest.raises(UpstreamCredentialInvalid, match="Invalid username or access token"):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))


def test_invalid_rule_it_reused_is_left_alone(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("docker-hub", "registry-1.docker.io", SECRET))
    stubs.validate("docker-hub", "registry-1.docker.io", valid=False, failure="Invalid username or access token")
    with pytest.raises(UpstreamCredentialInvalid):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))


def test_losing_a_creation_race_reuses_the_winners_rule(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()
    stubs.ecr.add_client_error(
        "create_pull_through_cache_rule",
        "PullThroughCacheRuleAlreadyExistsException",
        "A pull through cache rule with these settings already exists for the registry",
    )
    stubs.rules(("ecr-public", "public.ecr.aws"))
    stubs.validate("ecr-public", "public.ecr.aws")
    rule = ensure_cache_rule(settings, request())
    assert (rule.ecr_repository_prefix, rule.created) == ("ecr-public", False)


def test_throttling_becomes_the_retryable_error(settings: Settings, stubs: Stubs) -> None:
    stubs.ecr.add_client_error("describe_pull_through_cache_rules", "ThrottlingException", "Rate exceeded")
    with pytest.raises(Exception) as caught:
        ensure_cache_rule(settings, request())
    assert type(caught.value).__name__ == "AwsThrottled"
    assert caught.value.retryable is True  # type: ignore[attr-defined]


# --- the credential a reused rule pulls with ------------------------------------------------------------------------
def test_a_rule_pulling_with_another_credential_is_a_conflict_not_silently_reused(
    settings: Settings, stubs: Stubs
) -> None:
    # Given the default Docker Hub prefix is a rule that pulls with team A's credential
    stubs.rules(("docker-hub", "registry-1.docker.io", SECRET))
    # When team B asks for an image under that prefix with its own credential
    with pytest.raises(CacheRuleConflict) as refused:
        ensure_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=OTHER_TEAMS_SECRET))
    # Then it is refused naming both credentials and what to do, and nothing is created
    assert SECRET in str(refused.value) and OTHER_TEAMS_SECRET in str(refused.value)
    assert "give that credentialArn, or choose another cachePrefix" in str(refused.value)


def test_the_rules_secret_named_by_its_partial_arn_is_the_same_credential(settings: Settings, stubs: Stubs) -> None:
    # Given a rule whose credential is the secret's full ARN (with Secrets Manager's random suffix)
    stubs.rules(("docker-hub", "registry-1.docker.io", SECRET))
    stubs.validate("docker-hub", "registry-1.docker.io")
    # When the request names that secret by its partial ARN
    partial = SECRET.removesuffix("-AbCdEf")
    rule = ensure_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=partial))
    # Then the rule is reused
    assert (rule.ecr_repository_prefix, rule.created, rule.credential_arn) == ("docker-hub", False, SECRET)


def test_without_a_prefix_a_rule_with_another_credential_is_passed_over_for_a_new_one(
    settings: Settings, stubs: Stubs
) -> None:
    # Given team A's rule for Docker Hub under a prefix of its own
    stubs.rules(("team-a-hub", "registry-1.docker.io", SECRET))
    # When team B asks for a Docker Hub image with its credential and no cachePrefix
    stubs.secrets.add_response(
        "describe_secret", {"ARN": OTHER_TEAMS_SECRET, "Name": "ecr-pullthroughcache/team-b"}, {"SecretId": ANY}
    )
    stubs.create("docker-hub", "registry-1.docker.io", "docker-hub", OTHER_TEAMS_SECRET)
    stubs.validate("docker-hub", "registry-1.docker.io")
    rule = ensure_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=OTHER_TEAMS_SECRET))
    # Then its own rule pulls with its own credential
    assert (rule.ecr_repository_prefix, rule.created, rule.credential_arn) == ("docker-hub", True, OTHER_TEAMS_SECRET)


def test_validation_refuses_the_credential_conflict_with_one_read(settings: Settings, stubs: Stubs) -> None:
    # Given the default prefix pulls with team A's credential
    stubs.rules(("docker-hub", "registry-1.docker.io", SECRET))
    # When ValidateRequest checks team B's request: only the listing is stubbed, so any write would fail the stubber
    with pytest.raises(CacheRuleConflict, match="give that credentialArn"):
        check_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=OTHER_TEAMS_SECRET))


# --- ValidateRequest's read-only check ---------------------------------------------------------------------------------
OTHER_ACCOUNT_IMAGE = "222233334444.dkr.ecr.us-west-2.amazonaws.com/team/api:1.4"
OTHER_ACCOUNT_REGISTRY = "222233334444.dkr.ecr.us-west-2.amazonaws.com"


def test_an_image_of_another_accounts_ecr_needs_its_rule_made_beforehand(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("ecr-public", "public.ecr.aws"))

    with pytest.raises(CacheRuleMissing) as refused:
        check_cache_rule(settings, request(image=OTHER_ACCOUNT_IMAGE, cachePrefix="team-api"))

    assert str(refused.value) == (
        f"images from {OTHER_ACCOUNT_REGISTRY} (another account's ECR registry) need a pull-through-cache rule whose "
        "customRoleArn names a role ECR assumes to pull from it: create it (aws ecr create-pull-through-cache-rule "
        "--upstream-registry ecr --custom-role-arn …) and give its prefix as cachePrefix"
    )


def test_another_accounts_ecr_with_its_rule_under_the_prefix_passes(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("team-api", OTHER_ACCOUNT_REGISTRY))

    check_cache_rule(settings, request(image=OTHER_ACCOUNT_IMAGE, cachePrefix="team-api"))


def test_a_rule_for_that_registry_under_another_prefix_does_not_count(settings: Settings, stubs: Stubs) -> None:
    stubs.rules(("other-prefix", OTHER_ACCOUNT_REGISTRY))

    with pytest.raises(CacheRuleMissing):
        check_cache_rule(settings, request(image=OTHER_ACCOUNT_IMAGE, cachePrefix="team-api"))


def test_the_stacks_own_ecr_needs_no_rule_made_beforehand(settings: Settings, stubs: Stubs) -> None:
    stubs.rules()

    check_cache_rule(settings, request(image="111122223333.dkr.ecr.us-west-2.amazonaws.com/team/api:1.4"))


def test_every_page_of_rules_is_read(settings: Settings, stubs: Stubs) -> None:
    # Given the conflicting rule on the second page of DescribePullThroughCacheRules
    first_page = {
        "pullThroughCacheRules": [
            {"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "createdAt": NOW, "registryId": "1"}
        ],
        "nextToken": "page-2",
    }
    stubs.ecr.add_response("describe_pull_through_cache_rules", first_page, {})
    stubs.ecr.add_response(
        "describe_pull_through_cache_rules",
        {
            "pullThroughCacheRules": [
                {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "quay.io", "createdAt": NOW}
            ]
        },
        {"nextToken": "page-2"},
    )
    # When ValidateRequest checks the walkthrough's request, then the conflict is found and named
    with pytest.raises(CacheRuleConflict) as refused:
        check_cache_rule(settings, request())
    assert str(refused.value) == (
        "ECR prefix 'ecr-public' is already a pull-through-cache rule for quay.io, not public.ecr.aws: choose another "
        "cachePrefix"
    )


@pytest.mark.usefixtures("aws")  # the holders table, in moto's DynamoDB
@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param("Invalid username or access token", "Invalid username or access token", id="with-reason"),
        pytest.param("", "no reason given", id="without-reason"),
    ],
)
def test_an_invalid_rule_the_app_took_and_created_is_let_go_and_deleted(
    settings: Settings, stubs: Stubs, failure: str, reason: str
) -> None:
    # Given ECR finds the rule the app just created unable to reach the upstream with its credential
    stubs.rules()
    stubs.secrets.add_response("describe_secret", {"ARN": SECRET}, {"SecretId": SECRET})
    stubs.create("docker-hub", "registry-1.docker.io", "docker-hub", SECRET)
    stubs.validate("docker-hub", "registry-1.docker.io", valid=False, failure=failure)
    stubs.ecr.add_response(
        "delete_pull_through_cache_rule", {"ecrRepositoryPrefix": "docker-hub"}, {"ecrRepositoryPrefix": "docker-hub"}
    )
    # When the step runs for an app, then the error says why, the app holds nothing and the rule was deleted
    with pytest.raises(UpstreamCredentialInvalid) as invalid:
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET), holder="blog/fargate/redis")
    assert str(invalid.value) == (
        f"ECR pull-through-cache rule 'docker-hub' for registry-1.docker.io is not valid: {reason}; check the "
        "credential secret's username and accessToken"
    )
    assert holders_of("cacheRule/docker-hub") == []


@pytest.mark.usefixtures("aws")
def test_a_reused_rule_is_taken_then_looked_up_again(settings: Settings, stubs: Stubs) -> None:
    # Given the walkthrough's rule, still there when looked up after the app took it
    stubs.rules(("ecr-public", "public.ecr.aws"))
    stubs.ecr.add_response(
        "describe_pull_through_cache_rules", {"pullThroughCacheRules": []}, {"ecrRepositoryPrefixes": ["ecr-public"]}
    )
    stubs.validate("ecr-public", "public.ecr.aws")
    # When the step runs for an app, then it reuses the rule and holds it
    rule = ensure_cache_rule(settings, request(), holder="blog/fargate/demo-app")
    assert (rule.ecr_repository_prefix, rule.created, rule.validated) == ("ecr-public", False, True)
    assert holders_of("cacheRule/ecr-public") == ["blog/fargate/demo-app"]


@pytest.mark.usefixtures("aws")
def test_a_rule_deleted_between_the_listing_and_the_take_is_retried_holding_nothing(
    settings: Settings, stubs: Stubs
) -> None:
    # Given the rule listed, then gone when looked up after the take (its last holder's release deleted it)
    stubs.rules(("ecr-public", "public.ecr.aws"))
    stubs.ecr.add_client_error(
        "describe_pull_through_cache_rules",
        "PullThroughCacheRuleNotFoundException",
        "The pull through cache rule with the prefix 'ecr-public' does not exist",
        expected_params={"ecrRepositoryPrefixes": ["ecr-public"]},
    )
    # When the step runs, then it asks to be retried (and makes the rule anew), holding nothing meanwhile
    with pytest.raises(SharedResourceReleasing) as retried:
        ensure_cache_rule(settings, request(), holder="blog/fargate/demo-app")
    assert str(retried.value) == "ECR pull-through-cache rule 'ecr-public' was deleted meanwhile; retried"
    assert holders_of("cacheRule/ecr-public") == []


def test_a_rule_reused_under_another_prefix_without_a_role_grants_nothing(settings: Settings, stubs: Stubs) -> None:
    # Given a rule for the upstream under another prefix, and no role named (a console-started check)
    stubs.rules(("public", "public.ecr.aws"))
    stubs.validate("public", "public.ecr.aws")
    # When the step runs, then it reuses the rule without an IAM call (the stub would refuse one)
    assert ensure_cache_rule(settings, request()).ecr_repository_prefix == "public"


@pytest.mark.parametrize(
    ("found", "deleted"), [pytest.param(True, True, id="deleted"), pytest.param(False, False, id="gone")]
)
def test_deleting_a_rule_says_whether_there_was_one(stubs: Stubs, found: bool, deleted: bool) -> None:
    if found:
        stubs.ecr.add_response(
            "delete_pull_through_cache_rule", {"ecrRepositoryPrefix": "quay"}, {"ecrRepositoryPrefix": "quay"}
        )
    else:
        stubs.ecr.add_client_error(
            "delete_pull_through_cache_rule", "PullThroughCacheRuleNotFoundException", "no such rule"
        )
    assert delete_cache_rule("quay") is deleted


def test_ecr_refusing_the_listing_or_the_delete_names_the_call(stubs: Stubs, settings: Settings) -> None:
    stubs.ecr.add_client_error("describe_pull_through_cache_rules", "AccessDeniedException", "not allowed")
    with pytest.raises(AccessDenied) as listing:
        ensure_cache_rule(settings, request())
    assert str(listing.value).startswith("list ECR pull-through-cache rules: not allowed")
    stubs.ecr.add_client_error("delete_pull_through_cache_rule", "AccessDeniedException", "not allowed")
    with pytest.raises(AccessDenied) as deleting:
        delete_cache_rule("quay")
    assert str(deleting.value).startswith("delete ECR pull-through-cache rule 'quay': not allowed")


@pytest.mark.usefixtures("aws")
def test_an_invalid_rule_another_app_holds_too_is_let_go_but_kept(settings: Settings, stubs: Stubs) -> None:
    # Given another app holding the Docker Hub rule too (it is on its way to reuse or create it)
    from fargate_app.holders import rule_resource, take

    take(settings, rule_resource("docker-hub"), "blog/other/redis")
    stubs.rules()
    stubs.secrets.add_response("describe_secret", {"ARN": SECRET}, {"SecretId": SECRET})
    stubs.create("docker-hub", "registry-1.docker.io", "docker-hub", SECRET)
    stubs.validate("docker-hub", "registry-1.docker.io", valid=False, failure="Invalid username or access token")
    # When this app's creation turns out invalid, then it lets go of the rule without deleting it (no delete stubbed)
    with pytest.raises(UpstreamCredentialInvalid):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET), holder="blog/fargate/redis")
    assert holders_of("cacheRule/docker-hub") == ["blog/other/redis"]


def test_a_rule_without_a_credential_is_no_rule_for_a_credentialed_request(settings: Settings, stubs: Stubs) -> None:
    # Given the Docker Hub prefix is a rule that pulls anonymously
    stubs.rules(("docker-hub", "registry-1.docker.io"))
    # When a request names a credential, then the rule is not reused: it pulls as nobody
    with pytest.raises(CacheRuleConflict) as refused:
        ensure_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=SECRET))
    assert str(refused.value) == (
        f"ECR prefix 'docker-hub' pulls from registry-1.docker.io with credential (none), not credentialArn {SECRET}: "
        "give that credentialArn, or choose another cachePrefix for a rule of your own"
    )


def test_a_secret_whose_name_starts_like_the_rules_is_another_secret(settings: Settings, stubs: Stubs) -> None:
    # Given the rule pulls with ".../docker-hub-AbCdEf"; the request names ".../docker" (another secret's partial ARN)
    stubs.rules(("docker-hub", "registry-1.docker.io", SECRET))
    other = "arn:aws:secretsmanager:us-west-2:111122223333:secret:ecr-pullthroughcache/docker"
    with pytest.raises(CacheRuleConflict, match="not credentialArn .*/docker: give that credentialArn"):
        ensure_cache_rule(settings, request(image=DOCKER_HUB, credentialArn=other))


def test_without_a_prefix_the_first_rule_of_the_upstream_by_prefix_is_reused(settings: Settings, stubs: Stubs) -> None:
    # Given two rules for the upstream, neither under the default prefix, listed in no particular order
    stubs.rules(("zz-public", "public.ecr.aws"), ("aa-public", "public.ecr.aws"))
    stubs.validate("aa-public", "public.ecr.aws")
    # Then the choice does not depend on the listing's order
    assert ensure_cache_rule(settings, request()).ecr_repository_prefix == "aa-public"


def test_a_page_without_rules_lists_none(settings: Settings, stubs: Stubs) -> None:
    # pullThroughCacheRules is optional in DescribePullThroughCacheRules's answer (its service model)
    stubs.ecr.add_response("describe_pull_through_cache_rules", {}, {})
    check_cache_rule(settings, request())


def test_losing_a_race_to_a_rule_that_is_gone_again_is_a_conflict_saying_why(settings: Settings, stubs: Stubs) -> None:
    # Given the requested prefix made by another execution meanwhile, then gone again when listed
    stubs.rules()
    stubs.ecr.add_client_error(
        "create_pull_through_cache_rule", "PullThroughCacheRuleAlreadyExistsException", "rule ecr-public exists"
    )
    stubs.rules()
    with pytest.raises(CacheRuleConflict) as refused:
        ensure_cache_rule(settings, request(cachePrefix="ecr-public"))
    assert str(refused.value) == "ECR prefix 'ecr-public': rule ecr-public exists"


@pytest.mark.usefixtures("aws")
def test_every_ecr_and_secrets_manager_refusal_names_its_call(settings: Settings, stubs: Stubs) -> None:
    denied = ("AccessDeniedException", "not allowed")
    # the rule listed, then refused when looked up after the take
    stubs.rules(("ecr-public", "public.ecr.aws"))
    stubs.ecr.add_client_error("describe_pull_through_cache_rules", *denied)
    with pytest.raises(AccessDenied, match=r"^describe ECR pull-through-cache rule 'ecr-public': not allowed"):
        ensure_cache_rule(settings, request(), holder="blog/fargate/demo-app")
    # creating it
    stubs.rules()
    stubs.ecr.add_client_error("create_pull_through_cache_rule", *denied)
    with pytest.raises(AccessDenied, match=r"^create ECR pull-through-cache rule 'ecr-public': not allowed"):
        ensure_cache_rule(settings, request())
    # validating it
    stubs.rules(("ecr-public", "public.ecr.aws"))
    stubs.ecr.add_client_error("validate_pull_through_cache_rule", *denied)
    with pytest.raises(AccessDenied, match=r"^validate ECR pull-through-cache rule 'ecr-public': not allowed"):
        ensure_cache_rule(settings, request())
    # reading the credential's secret
    stubs.rules()
    stubs.secrets.add_client_error("describe_secret", *denied)
    with pytest.raises(AccessDenied, match=rf"^describe secret {SECRET}: not allowed"):
        ensure_cache_rule(settings, request(image="redis:7", credentialArn=SECRET))
