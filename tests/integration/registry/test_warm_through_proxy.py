"""WarmImageCache against real registries: an upstream, a pull-through proxy with htpasswd auth, and a front."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from botocore.stub import Stubber
from cache_topology import FAST_RETRY, Cache, sha256_of

from fargate_app.config import reset_settings
from fargate_app.errors import (
    ImageDigestMismatch,
    ImageNotFound,
    InvalidRequest,
    ManifestInvalid,
    PlatformNotAvailable,
    RegistryUnavailable,
    UpstreamAuthFailed,
)
from fargate_app.registry import warm_image_cache
from fargate_app.registry.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from fargate_sandbox.oci_images import Blob, RegistryPusher, multi_arch_sample

pytestmark = pytest.mark.registry

NGINX = "public.ecr.aws/nginx/nginx:stable"


def test_warms_only_the_amd64_image_and_the_cache_serves_it_without_the_upstream(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given the multi-arch nginx index in the upstream and a token for the cache's endpoint
    stubber = ecr_tokens(cache.front.url, cache.password)
    amd64, arm64 = cache.nginx.image_for("linux/amd64"), cache.nginx.image_for("linux/arm64/v8")

    # When the step warms it for linux/amd64
    warmed = warm_image_cache(NGINX, "ecr-public", "linux/amd64", retry=FAST_RETRY)

    # Then it reports the digest the upstream computed, pinned in the cache repository
    stubber.assert_no_pending_responses()
    assert warmed.digest == cache.nginx_digest
    assert warmed.cached == f"{cache.front.host}/ecr-public/nginx/nginx@{cache.nginx_digest}"
    assert warmed.platform == "linux/amd64"
    assert warmed.platform_digest == amd64.digest
    assert warmed.media_type == OCI_INDEX
    assert warmed.layers_warmed == 2
    assert warmed.bytes_warmed == sum(blob.size for blob in amd64.blobs)

    # And with the upstream gone, the cache still serves the tag, the amd64 manifest, its config and every layer
    cache.proxy.wait_for_blobs("nginx/nginx", [blob.digest for blob in amd64.blobs])
    cache.upstream.stop()
    tag = cache.get("/v2/ecr-public/nginx/nginx/manifests/stable", accept=OCI_INDEX)
    assert (tag.status, sha256_of(tag.data)) == (200, cache.nginx_digest)
    manifest = cache.get(f"/v2/ecr-public/nginx/nginx/manifests/{amd64.digest}", accept=amd64.manifest.media_type)
    assert (manifest.status, sha256_of(manifest.data)) == (200, amd64.digest)
    for blob in amd64.blobs:
        served = cache.get(f"/v2/ecr-public/nginx/nginx/blobs/{blob.digest}")
        assert (served.status, sha256_of(served.data)) == (200, blob.digest)

    # And nothing of arm64 was fetched: not in the cache's storage, never asked of the upstream
    assert not cache.proxy.has_manifest("nginx/nginx", arm64.digest)
    assert not any(cache.proxy.has_blob("nginx/nginx", blob.digest) for blob in arm64.blobs)
    pulled = " ".join(cache.upstream.requests(("GET", "HEAD")))
    assert amd64.digest in pulled
    assert not any(digest in pulled for digest in (arm64.digest, *(blob.digest for blob in arm64.blobs)))


def test_single_platform_docker_image_from_docker_hub_is_cached_under_library(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given redis:7, a Docker v2 schema 2 image for linux/amd64 only
    ecr_tokens(cache.front.url, cache.password)
    # When the step warms the short Docker Hub name
    warmed = warm_image_cache("docker.io/library/redis:7", "docker-hub", retry=FAST_RETRY)
    # Then it went through docker-hub/library/redis and pins the upstream's digest
    assert warmed.cached == f"{cache.front.host}/docker-hub/library/redis@{cache.redis_digest}"
    assert warmed.digest == warmed.platform_digest == cache.redis_digest
    assert warmed.media_type == DOCKER_MANIFEST
    assert (warmed.layers_warmed, warmed.bytes_warmed) == (2, sum(b.size for b in cache.redis.blobs))
    # And the cache stored every blob under the upstream's repository name (raises if one never arrives)
    cache.proxy.wait_for_blobs("library/redis", [blob.digest for blob in cache.redis.blobs])


def test_single_platform_image_for_another_platform_is_refused_before_any_layer(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    # When an amd64-only image is asked for linux/arm64
    with pytest.raises(
        PlatformNotAvailable, match=r"single-platform image for linux/amd64, not linux/arm64"
    ) as refused:
        warm_image_cache("docker.io/library/redis:7", "docker-hub", "linux/arm64", retry=FAST_RETRY)
    assert refused.value.message.startswith(
        f"image docker.io/library/redis:7 (cached as {cache.front.host}/docker-hub/library/redis)"
    )
    # Then no layer was pulled
    assert not any("/blobs/" + layer.digest in path for layer in cache.redis.layers for path in cache.front.paths)


def test_index_without_the_platform_lists_the_platforms_it_has(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    with pytest.raises(PlatformNotAvailable) as raised:
        warm_image_cache("quay.io/prometheus/busybox:latest", "quay", "linux/amd64", retry=FAST_RETRY)
    assert raised.value.message.startswith(
        f"image quay.io/prometheus/busybox:latest (cached as {cache.front.host}/quay/prometheus/busybox) has no image "
        "for platform linux/amd64 (it has: linux/arm64/v8)"
    )


def test_an_index_entry_that_is_an_index_under_an_image_media_type_is_refused_before_any_layer(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given an index whose linux/amd64 entry says it is an image manifest but whose digest is another index's
    ecr_tokens(cache.front.url, cache.password)
    pusher, inner = RegistryPusher(cache.upstream.url), multi_arch_sample("nested")
    pusher.push_index("nested/app", inner, "inner")
    entry = {**inner.manifest.descriptor(platform={"architecture": "amd64", "os": "linux"}), "mediaType": OCI_MANIFEST}
    outer = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    pusher.push_manifest("nested/app", "v1", Blob(OCI_INDEX, json.dumps(outer).encode()))

    # When the step warms it, then it is refused, saying which entry
    with pytest.raises(ManifestInvalid) as refused:
        warm_image_cache("public.ecr.aws/nested/app:v1", "ecr-public", "linux/amd64", retry=FAST_RETRY)
    assert refused.value.message == (
        f"image public.ecr.aws/nested/app:v1 (cached as {cache.front.host}/ecr-public/nested/app): the linux/amd64 "
        "entry of the index is itself an index"
    )
    assert not any("/blobs/" in path for path in cache.front.paths)


def test_missing_tag_is_image_not_found_naming_image_and_registry(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    with pytest.raises(ImageNotFound) as raised:
        warm_image_cache("public.ecr.aws/nginx/nginx:no-such-tag", "ecr-public", retry=FAST_RETRY)
    message = raised.value.message
    assert "public.ecr.aws/nginx/nginx:no-such-tag" in message
    assert f"registry {cache.front.host}" in message
    assert "MANIFEST_UNKNOWN" in message


def test_wrong_password_is_upstream_auth_failed_after_exactly_one_refresh(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given ECR hands out two tokens the cache does not accept
    stubber = ecr_tokens(cache.front.url, "stale", "still-wrong")
    # When the step runs, then it refreshes once and gives up with the contract error, never showing the token
    with pytest.raises(UpstreamAuthFailed) as raised:
        warm_image_cache(NGINX, "ecr-public", retry=FAST_RETRY)
    stubber.assert_no_pending_responses()
    assert "401" in raised.value.message
    assert "still-wrong" not in raised.value.message and "c3RpbGwtd3Jvbmc" not in raised.value.message


def test_an_expired_token_is_refreshed_and_the_warm_succeeds(cache: Cache, ecr_tokens: Callable[..., Stubber]) -> None:
    stubber = ecr_tokens(cache.front.url, "expired", cache.password)
    warmed = warm_image_cache(NGINX, "ecr-public", retry=FAST_RETRY)
    stubber.assert_no_pending_responses()
    assert warmed.digest == cache.nginx_digest


def test_a_registry_that_answers_503_a_few_times_then_recovers_is_retried(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    # Given the registry answers 503 to the first three requests
    faults = cache.front.inject(3)
    # When the step runs with three retries
    warmed = warm_image_cache(NGINX, "ecr-public", retry=FAST_RETRY)
    # Then it succeeded after taking all three faults
    assert faults.served == 3
    assert warmed.digest == cache.nginx_digest


def test_layer_downloads_are_retried_too(cache: Cache, ecr_tokens: Callable[..., Stubber]) -> None:
    ecr_tokens(cache.front.url, cache.password)
    faults = cache.front.inject(2, status=502, path_part="/blobs/")
    warmed = warm_image_cache(NGINX, "ecr-public", retry=FAST_RETRY)
    assert faults.served == 2
    assert warmed.layers_warmed == 2


def test_a_registry_that_never_recovers_is_registry_unavailable(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    faults = cache.front.inject(1000)
    with pytest.raises(RegistryUnavailable, match=r"503 UNAVAILABLE after 3 retries"):
        warm_image_cache(NGINX, "ecr-public", retry=FAST_RETRY)
    assert faults.served == 1 + FAST_RETRY.retries


def test_an_unwarmed_digest_with_the_upstream_down_is_retryable(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given the upstream is down and the cache never saw the image.
    # Observed: distribution's proxy answers 500 UNKNOWN (its dial error) for a digest it cannot fetch, but
    # 404 MANIFEST_UNKNOWN for a tag (it falls back to its local tags), so only a pinned digest can tell the two apart.
    ecr_tokens(cache.front.url, cache.password)
    cache.upstream.stop()
    with pytest.raises(RegistryUnavailable, match=r"500 UNKNOWN"):
        warm_image_cache(f"public.ecr.aws/nginx/nginx@{cache.nginx_digest}", "ecr-public", retry=FAST_RETRY)


def test_a_tag_with_its_digest_is_warmed_through_the_tag_and_pinned(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    # Given nothing is cached yet: ECR's cache imports by tag (a digest alone is served only once cached)
    ecr_tokens(cache.front.url, cache.password)
    # When the reference names the tag and the digest it resolves to
    warmed = warm_image_cache(f"{NGINX}@{cache.nginx_digest}", "ecr-public", retry=FAST_RETRY)
    # Then it is warmed, pinned to that digest, on the first try and every time
    assert (warmed.digest, warmed.cached.rsplit("@", 1)[1]) == (cache.nginx_digest, cache.nginx_digest)


def test_a_tag_with_the_digest_of_one_of_its_platforms_pins_that_platform(
    cache: Cache, ecr_tokens: Callable[..., Stubber]
) -> None:
    ecr_tokens(cache.front.url, cache.password)
    amd64 = cache.nginx.image_for("linux/amd64")
    warmed = warm_image_cache(f"{NGINX}@{amd64.digest}", "ecr-public", retry=FAST_RETRY)
    assert (warmed.digest, warmed.platform_digest) == (amd64.digest, amd64.digest)


def test_a_tag_that_moved_away_from_its_digest_is_a_mismatch(cache: Cache, ecr_tokens: Callable[..., Stubber]) -> None:
    ecr_tokens(cache.front.url, cache.password)
    pinned = "sha256:" + "0" * 64
    with pytest.raises(ImageDigestMismatch) as moved:
        warm_image_cache(f"{NGINX}@{pinned}", "ecr-public", retry=FAST_RETRY)
    assert moved.value.message == (
        f"image {NGINX}@{pinned} (cached as {cache.front.host}/ecr-public/nginx/nginx): the tag now resolves to "
        f"{cache.nginx_digest}, not to the pinned {pinned}: the tag was moved; pin the digest it has now, or drop "
        "the digest to follow the tag"
    )


@pytest.fixture
def function_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment template.yaml gives the function; settings are re-read before and after."""
    for key, value in {
        "AWS_REGION": "us-west-2",
        "ACCOUNT_ID": "111122223333",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "test",
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    yield
    reset_settings()


@pytest.mark.usefixtures("function_environment")
def test_handler_returns_the_image_object_of_the_result(
    cache: Cache, ecr_tokens: Callable[..., Stubber], handler: Callable[[str], ModuleType], lambda_context: object
) -> None:
    # Given the state the state machine passes after EnsureCacheRule
    ecr_tokens(cache.front.url, cache.password)
    event = {
        "request": {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": NGINX},
        "podExecutionRole": {"arn": "arn:aws:iam::111122223333:role/x", "name": "x", "created": True},
        "cacheRule": {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "public.ecr.aws", "created": True},
    }
    # When the Lambda handler runs
    output = handler("warm_image_cache").lambda_handler(event, lambda_context)
    # Then its output is the image object of docs/design.md §3 in camelCase, pinned by the upstream's digest
    assert set(output) == {
        "requested",
        "cached",
        "digest",
        "platform",
        "platformDigest",
        "layersWarmed",
        "bytesWarmed",
        "mediaType",
        "durationSeconds",
    }
    assert output["requested"] == NGINX
    assert output["cached"] == f"{cache.front.host}/ecr-public/nginx/nginx@{cache.nginx_digest}"
    assert (output["digest"], output["platform"], output["layersWarmed"]) == (cache.nginx_digest, "linux/amd64", 2)
    json.dumps(output)  # JSON-able as Step Functions needs it


def test_handler_rejects_a_cache_rule_for_another_upstream(
    handler: Callable[[str], ModuleType], lambda_context: object, function_environment: None
) -> None:
    event = {
        "request": {"cluster": "blog", "app": "demo-app", "namespace": "fargate", "image": NGINX},
        "cacheRule": {"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "created": False},
    }
    with pytest.raises(InvalidRequest, match=r"cacheRule: prefix 'quay' caches quay.io, not public.ecr.aws"):
        handler("warm_image_cache").lambda_handler(event, lambda_context)
