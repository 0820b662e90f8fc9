"""ECR pull-through-cache rules with AWS's validation, through plain boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sandbox_test_support import unique

from fargate_sandbox.sandbox import Sandbox


def _error(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]  # type: ignore[no-any-return]


def test_create_describe_delete_round_trip(sandbox: Sandbox) -> None:
    # Given a fresh prefix for ECR Public
    ecr = sandbox.boto3_client("ecr")
    prefix = unique("pub")
    # When the rule is created, described and deleted
    created = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws")
    described = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])["pullThroughCacheRules"]
    deleted = ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
    # Then each answer carries the rule, and afterwards it is not found
    assert created["upstreamRegistry"] == "ecr-public"
    assert created["registryId"] == "111122223333"
    assert [r["upstreamRegistryUrl"] for r in described] == ["public.ecr.aws"]
    assert deleted["ecrRepositoryPrefix"] == prefix
    error = _error(ecr.delete_pull_through_cache_rule, ecrRepositoryPrefix=prefix)
    assert error["Code"] == "PullThroughCacheRuleNotFoundException"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", "Member must have length greater than or equal to 2"),
        ("x" * 31, "Member must have length less than or equal to 30"),
        ("Upper-Case", "Member must satisfy regular expression pattern"),
        ("double--/slash//", "Member must satisfy regular expression pattern"),
    ],
)
def test_invalid_prefix_is_a_validation_exception(sandbox: Sandbox, prefix: str, expected: str) -> None:
    # Given a client that skips botocore's own parameter checks (other SDKs and raw HTTP callers do)
    ecr = sandbox.boto3_client("ecr", config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    # When a rule is created with a prefix that breaks the API's constraints
    error = _error(ecr.create_pull_through_cache_rule, ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")
    # Then ECR answers ValidationException in AWS's "Value … at 'ecrRepositoryPrefix' failed to satisfy" words
    assert error["Code"] == "ValidationException"
    assert f"Value '{prefix}' at 'ecrRepositoryPrefix' failed to satisfy constraint: {expected}" in error["Message"]


SECRETS = "arn:aws:secretsmanager:us-west-2:111122223333:secret:"
NEEDS_AUTHENTICATION = "The specified upstream registry requires authentication"


@pytest.mark.parametrize(
    ("upstream", "secret", "code", "says"),
    [
        pytest.param(
            "harbor.example.com",
            None,
            "UnsupportedUpstreamRegistryException",
            "harbor.example.com is invalid",
            id="unsupported",
        ),
        *(
            pytest.param(url, None, "UnsupportedUpstreamRegistryException", NEEDS_AUTHENTICATION, id=f"no-secret-{url}")
            for url in ("registry-1.docker.io", "ghcr.io", "registry.gitlab.com", "myreg.azurecr.io")
        ),
        pytest.param(
            "registry-1.docker.io",
            "my-dockerhub-creds-AbCdEf",
            "ValidationException",
            "at 'credentialArn' failed to satisfy constraint",
            id="secret-without-the-ecr-prefix",
        ),
        pytest.param(
            "registry-1.docker.io",
            "ecr-pullthroughcache/nobody-AbCdEf",
            "SecretNotFoundException",
            "",
            id="missing-secret",
        ),
    ],
)
def test_a_rule_ecr_cannot_use_is_refused_in_its_words(
    sandbox: Sandbox, upstream: str, secret: str | None, code: str, says: str
) -> None:
    # When a rule is created for an upstream ECR does not support, or without a usable secret for one that needs it
    credential = {"credentialArn": SECRETS + secret} if secret else {}
    error = _error(
        sandbox.boto3_client("ecr").create_pull_through_cache_rule,
        ecrRepositoryPrefix=unique("r"),
        upstreamRegistryUrl=upstream,
        **credential,
    )
    # Then ECR refuses it with its error code and message
    assert error["Code"] == code
    assert says in error["Message"]


def test_duplicate_prefix_already_exists(sandbox: Sandbox) -> None:
    ecr = sandbox.boto3_client("ecr")
    prefix = unique("dup")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")
    error = _error(
        ecr.create_pull_through_cache_rule, ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.k8s.io"
    )
    assert error["Code"] == "PullThroughCacheRuleAlreadyExistsException"


def test_validate_accepts_the_seeded_secret_and_rejects_a_wrong_one(sandbox: Sandbox) -> None:
    # Given a rule with the seeded Docker Hub secret and one with a secret holding other credentials
    ecr = sandbox.boto3_client("ecr")
    good, bad = unique("hub"), unique("hub")
    seeded = sandbox.seeds.secret_arns["ecr-pullthroughcache/docker-hub"]
    wrong = sandbox.boto3_client("secretsmanager").create_secret(
        Name=f"ecr-pullthroughcache/{bad}", SecretString=json.dumps({"username": "someone", "accessToken": "nope"})
    )["ARN"]
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix=good, upstreamRegistryUrl="registry-1.docker.io", credentialArn=seeded
    )
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix=bad, upstreamRegistryUrl="registry-1.docker.io", credentialArn=wrong
    )
    # When both are validated
    ok = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=good)
    ko = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=bad)
    # Then only the seeded credentials are valid, and the failure says why
    assert ok["isValid"] is True and "failure" not in ok
    assert ko["isValid"] is False
    assert "Unable to authenticate with the upstream registry registry-1.docker.io" in ko["failure"]


def test_validate_unknown_prefix_is_not_found(sandbox: Sandbox) -> None:
    error = _error(sandbox.boto3_client("ecr").validate_pull_through_cache_rule, ecrRepositoryPrefix=unique("none"))
    assert error["Code"] == "PullThroughCacheRuleNotFoundException"
