"""The production AWS steps (fargate_app.aws.*) run unchanged against the sandbox, boto3 pointed at it by env."""

from __future__ import annotations

import json

import pytest
from sandbox_test_support import PROFILE_SECONDS, unique

from fargate_app import holders
from fargate_app.aws.ecr import ensure_cache_rule
from fargate_app.aws.eks import check_fargate_profile, ensure_fargate_profile
from fargate_app.aws.iam import ensure_pod_execution_role
from fargate_app.compensate import compensate
from fargate_app.config import Settings
from fargate_app.errors import (
    ProfileNotYetActive,
    ProfileOperationInProgress,
    SharedResourceReleasing,
    SubnetNotPrivate,
)
from fargate_app.models import parse_request
from fargate_sandbox.eks_rules import ManualClock
from fargate_sandbox.sandbox import Sandbox


def test_role_profile_and_cache_rule_steps_succeed(
    sandbox: Sandbox, sandbox_clock: ManualClock, aws_env: Settings, cluster: str
) -> None:
    # Given a request for an app on a fresh cluster in the seeded VPC
    namespace = unique("ns")
    request = parse_request(
        {
            "cluster": cluster,
            "app": "demo-app",
            "namespace": namespace,
            "image": "public.ecr.aws/nginx/nginx:stable",
            "cachePrefix": unique("ecr-public"),
        },
        region="us-west-2",
        account="111122223333",
    )
    # When the steps run in order
    role = ensure_pod_execution_role(aws_env, cluster, request.effective_cache_prefix)
    profile = ensure_fargate_profile(aws_env, request, role.arn)
    with pytest.raises(ProfileNotYetActive, match="is CREATING"):
        check_fargate_profile(aws_env, profile)
    sandbox_clock.advance(PROFILE_SECONDS)
    active = check_fargate_profile(aws_env, profile)
    rule = ensure_cache_rule(aws_env, request, role.name)
    # Then the role is created in the sandbox account, the profile uses only private subnets and becomes ACTIVE,
    assert role.created and role.arn.startswith("arn:aws:iam::111122223333:role/")
    assert profile.created and profile.status == "CREATING"
    assert set(profile.subnets) == set(sandbox.seeds.network.private_subnets)
    assert (active.status, active.waiting_since) == ("ACTIVE", None) and profile.waiting_since is not None
    # and the cache rule is created and validated
    assert rule.created and rule.validated and rule.upstream_registry_url == "public.ecr.aws"


def test_concurrent_profile_surfaces_as_retryable(sandbox: Sandbox, aws_env: Settings, cluster: str) -> None:
    # Given one app's profile still CREATING
    role_arn = "arn:aws:iam::111122223333:role/AmazonEKSFargatePodExecutionRole"
    first = parse_request({"cluster": cluster, "app": "a", "namespace": unique("a"), "image": "quay.io/x/y:1"})
    second = parse_request({"cluster": cluster, "app": "b", "namespace": unique("b"), "image": "quay.io/x/y:1"})
    per_namespace = aws_env.model_copy(update={"profile_strategy": "per-namespace"})  # a profile per namespace
    ensure_fargate_profile(per_namespace, first, role_arn)
    # When another app needs a profile on the same cluster
    # Then EKS's one-at-a-time rule surfaces as the retryable ProfileOperationInProgress
    with pytest.raises(ProfileOperationInProgress, match="currently has Fargate profile"):
        ensure_fargate_profile(per_namespace, second, role_arn)


def test_public_subnet_request_is_subnet_not_private(sandbox: Sandbox, aws_env: Settings, cluster: str) -> None:
    request = parse_request(
        {
            "cluster": cluster,
            "app": "p",
            "namespace": unique("p"),
            "image": "quay.io/x/y:1",
            "subnets": [sandbox.seeds.network.public_subnet],
        }
    )
    with pytest.raises(SubnetNotPrivate):
        ensure_fargate_profile(aws_env, request, "arn:aws:iam::111122223333:role/AmazonEKSFargatePodExecutionRole")


def test_compensation_deletes_the_cache_rule_its_execution_created(sandbox: Sandbox, aws_env: Settings) -> None:
    # Given a cache rule the failed execution created, and one it found already there
    body = {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": "quay.io/prometheus/busybox:1"}
    created = ensure_cache_rule(aws_env, parse_request({**body, "cachePrefix": unique("mine")}))
    found = ensure_cache_rule(aws_env, parse_request({**body, "cachePrefix": unique("theirs")}))
    state = {
        "request": parse_request(body).to_json(),
        "failedStep": "WarmImageCache",
        "error": {"Error": "ImageNotFound", "Cause": json.dumps({"errorMessage": "no such tag"})},
    }
    # When compensating each
    mine = compensate(aws_env, {**state, "cacheRule": created.to_json()})
    theirs = compensate(aws_env, {**state, "cacheRule": {**found.to_json(), "created": False}})
    # Then the created rule is reported deleted and is gone from ECR; the one it found is untouched
    assert mine.compensated == [f"pull-through-cache rule {created.ecr_repository_prefix}"]
    assert (theirs.compensated, theirs.leftovers) == ([], [])
    rules = sandbox.boto3_client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    prefixes = {rule["ecrRepositoryPrefix"] for rule in rules}
    assert created.ecr_repository_prefix not in prefixes and found.ecr_repository_prefix in prefixes


@pytest.mark.parametrize(
    ("image", "upstream", "repository", "tag", "credential"),
    [
        # public.ecr.aws is the stub upstream in this session's sandbox; its seed is checked below
        ("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", None),
        ("quay.io/prometheus/busybox:latest", "quay.io", "prometheus/busybox", "latest", None),
        ("redis:7", "registry-1.docker.io", "library/redis", "7", "ecr-pullthroughcache/docker-hub"),
        (
            "ghcr.io/stefanprodan/podinfo:6.7.0",
            "ghcr.io",
            "stefanprodan/podinfo",
            "6.7.0",
            "ecr-pullthroughcache/github",
        ),
    ],
)
def test_every_seeded_image_warms_through_its_cache_rule(
    sandbox: Sandbox, aws_env: Settings, image: str, upstream: str, repository: str, tag: str, credential: str | None
) -> None:
    # Given a cache rule for the seeded upstream (credentialed upstreams use their seeded secret)
    from fargate_app.registry import warm_image_cache

    body = {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": image, "cachePrefix": unique("c")}
    if credential:
        secrets = sandbox.boto3_client("secretsmanager")
        body["credentialArn"] = secrets.describe_secret(SecretId=credential)["ARN"]
    request = parse_request(body, region="us-west-2", account="111122223333")
    rule = ensure_cache_rule(aws_env, request)
    # When the warm step pulls the image through the sandbox's private registry
    warmed = warm_image_cache(request.image, rule.ecr_repository_prefix, request.platform)
    # Then it resolves to the digest the real upstream registry computed, pinned under the sandbox registry host,
    assert sandbox.upstreams is not None
    assert warmed.digest == sandbox.upstreams.digest(upstream, repository, tag)
    host = sandbox.registry_url.removeprefix("http://")
    assert warmed.cached == f"{host}/{rule.ecr_repository_prefix}/{repository}@{warmed.digest}"
    assert warmed.layers_warmed == 2
    # and the first pull created the cache repository, as ECR does
    names = [r["repositoryName"] for r in sandbox.boto3_client("ecr").describe_repositories()["repositories"]]
    assert f"{rule.ecr_repository_prefix}/{repository}" in names


def test_the_seeded_nginx_is_a_multi_arch_index_behind_its_proxy(sandbox: Sandbox) -> None:
    import urllib3

    assert sandbox.upstreams is not None
    proxy = sandbox.upstreams.registries["public.ecr.aws"].proxy
    answer = urllib3.PoolManager().request(
        "GET",
        f"{proxy.url}/v2/nginx/nginx/manifests/stable",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    assert answer.status == 200
    assert answer.headers["Docker-Content-Digest"] == sandbox.upstreams.digest(
        "public.ecr.aws", "nginx/nginx", "stable"
    )
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in json.loads(answer.data)["manifests"]}
    assert platforms == {("linux", "amd64"), ("linux", "arm64")}


def test_the_app_holds_the_cache_rule_and_a_rule_deleted_meanwhile_is_retried(
    sandbox: Sandbox, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rule one app's provision created (it holds it)
    body = {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": "quay.io/prometheus/busybox:1"}
    prefix = unique("held")
    first = parse_request({**body, "cachePrefix": prefix})
    ensure_cache_rule(aws_env, first, holder=first.holder)
    # When another app's provision reuses it just as the first app's release deletes it (after the listing)
    ecr = sandbox.boto3_client("ecr")
    taking = holders.take

    def deleted_first(settings: Settings, resource: str, holder: str) -> bool:
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        return taking(settings, resource, holder)

    monkeypatch.setattr(holders, "take", deleted_first)
    web = parse_request({**body, "app": "web", "cachePrefix": prefix})
    # Then its step is retried (it holds nothing meanwhile), and the retry makes the rule anew and holds it
    with pytest.raises(SharedResourceReleasing, match="deleted meanwhile"):
        ensure_cache_rule(aws_env, web, holder=web.holder)
    monkeypatch.setattr(holders, "take", taking)
    assert holders.release(aws_env, f"cacheRule/{prefix}", "nobody") == [first.holder]
    again = ensure_cache_rule(aws_env, web, holder=web.holder)
    assert again.created is True
    assert holders.release(aws_env, f"cacheRule/{prefix}", "nobody") == [first.holder, web.holder]
