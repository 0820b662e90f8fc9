"""Step WarmImageCache: pull the image through the ECR pull-through cache once, and pin it by digest.

A pull-through cache holds an image only after something pulled it through the private registry; the walkthrough
did that with ``docker pull``. This step does the same pull without a container engine: the manifest for the tag,
the requested platform's manifest, its config and every layer — and nothing of other platforms — so that the first
pod start never waits on the upstream and the Deployment can name an immutable digest.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from fargate_app.errors import ImageDigestMismatch, InvalidRequest, ManifestInvalid
from fargate_app.images import ImageReference, InvalidReference, parse_reference
from fargate_app.models import ECR_PREFIX, RequestEvent, StepModel
from fargate_app.observability import logger
from fargate_app.registry.client import RegistryClient, RetryPolicy
from fargate_app.registry.credentials import CredentialSource, ecr_credentials
from fargate_app.registry.manifests import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    check_config_platform,
    select_platform,
)

DEFAULT_PLATFORM = "linux/amd64"  # the only platform EKS Fargate runs today
LAYER_CONCURRENCY = 4
MAX_CONFIG_BYTES = 8 * 1024 * 1024


class CacheRuleRef(StepModel):
    """The part of EnsureCacheRule's result this step reads: the prefix that routes to the image's upstream."""

    model_config = ConfigDict(extra="ignore")
    ecr_repository_prefix: str = Field(min_length=2, max_length=30, pattern=ECR_PREFIX.pattern)
    upstream_registry_url: str


class WarmImageCacheEvent(RequestEvent):
    cache_rule: CacheRuleRef

    @model_validator(mode="after")
    def _rule_serves_the_image(self) -> Self:
        upstream = self.request.image_reference.upstream
        if upstream is not None and upstream.registry_url != self.cache_rule.upstream_registry_url:
            raise ValueError(
                f"cacheRule: prefix {self.cache_rule.ecr_repository_prefix!r} caches "
                f"{self.cache_rule.upstream_registry_url}, not {upstream.registry_url} where the image lives"
            )
        return self


class WarmedImage(StepModel):
    """The ``image`` object of docs/design.md §3.

    ``digest`` is what the tag resolved to (the index for a multi-arch image), so the pinned reference ``cached``
    still lets the node pick its platform; ``platformDigest`` is the manifest actually warmed. ``bytesWarmed``
    counts every blob pulled: the layers and the config.
    """

    requested: str
    cached: str
    digest: str
    platform: str
    platform_digest: str
    layers_warmed: int
    bytes_warmed: int
    media_type: str
    duration_seconds: float


def cache_repository(cache_prefix: str, image: ImageReference) -> str:
    """The private repository that caches ``image``: ``<prefix>/<upstream repository>``.

    Docker Hub official images keep the ``library/`` that normalisation adds (``redis`` → ``docker-hub/library/
    redis``), as ECR requires; nested repositories keep every component (``ecr-public/nginx/nginx``).
    """
    return f"{cache_prefix}/{image.repository}"


def warm_image_cache(
    image: str,
    cache_prefix: str,
    platform: str = DEFAULT_PLATFORM,
    *,
    credentials: CredentialSource = ecr_credentials,
    retry: RetryPolicy | None = None,
    concurrency: int = LAYER_CONCURRENCY,
) -> WarmedImage:
    """Pull ``image`` for ``platform`` through the cache repository under ``cache_prefix``; report its digest.

    Raises:
        InvalidRequest: the image reference or the platform cannot be parsed.
        ImageNotFound: the tag, the repository or a blob does not exist (in the cache nor upstream).
        PlatformNotAvailable: the image has no variant for ``platform`` (the message lists those it has).
        UpstreamAuthFailed: the registry refused the ECR token, even after one refresh.
        ManifestInvalid: a manifest is not JSON, has an unsupported media type, or does not match its digest.
        RegistryUnavailable: 429/5xx/connection errors after retries, or a blob that does not match its digest.
        AwsThrottled: ECR GetAuthorizationToken throttled or failed transiently after the SDK's retries.
    """
    started = time.monotonic()
    try:
        reference = parse_reference(image)
        wanted = Platform.parse(platform)
    except (InvalidReference, ValueError) as exc:
        raise InvalidRequest.of(f"image {image!r} for platform {platform!r}", str(exc)) from exc
    repository = cache_repository(cache_prefix, reference)
    with RegistryClient(credentials, image=image, retry=retry, max_connections=concurrency) as registry:
        where = f"image {image} (cached as {registry.registry}/{repository})"
        # ECR's cache imports an image by tag and only then serves its digests (aws/containers-roadmap#2837): a
        # pinned reference is pulled through its tag, then held to its digest.
        resolved = registry.get_manifest(repository, reference.tag or reference.reference)
        if reference.digest and reference.tag:
            resolved = _pinned(registry, repository, resolved, reference.digest, where)
        manifest = _platform_manifest(registry, repository, resolved, wanted, where)
        config = registry.read_blob(repository, manifest.config, limit=MAX_CONFIG_BYTES)
        if resolved is manifest:  # an index already vouched for the platform; a lone manifest says it in its config
            check_config_platform(config, wanted, where)
        layers = _unique_pullable(manifest.layers)
        layer_bytes = _warm_layers(registry, repository, layers, concurrency)
        cached = f"{registry.registry}/{repository}@{resolved.digest}"
    result = WarmedImage(
        requested=image,
        cached=cached,
        digest=resolved.digest,
        platform=str(wanted),
        platform_digest=manifest.digest,
        layers_warmed=len(layers),
        bytes_warmed=len(config) + layer_bytes,
        media_type=resolved.media_type,
        duration_seconds=round(time.monotonic() - started, 3),
    )
    logger.info("image warmed", extra={"image": result.requested, "cached": result.cached, "layers": len(layers)})
    return result


def _pinned(
    registry: RegistryClient, repository: str, resolved: ImageIndex | ImageManifest, digest: str, where: str
) -> ImageIndex | ImageManifest:
    """What ``name:tag@digest`` names: the tag's image when it is that digest, or the platform image of the tag's
    index that is.

    Raises:
        ImageDigestMismatch: the tag resolves to something else now (it was moved since the digest was taken).
    """
    if resolved.digest == digest:
        return resolved
    if isinstance(resolved, ImageIndex) and any(entry.digest == digest for entry in resolved.manifests):
        return registry.get_manifest(repository, digest)
    raise ImageDigestMismatch(
        f"{where}: the tag now resolves to {resolved.digest}, not to the pinned {digest}: the tag was moved; pin "
        "the digest it has now, or drop the digest to follow the tag"
    )


def _platform_manifest(
    registry: RegistryClient, repository: str, resolved: ImageIndex | ImageManifest, wanted: Platform, where: str
) -> ImageManifest:
    if isinstance(resolved, ImageManifest):
        return resolved
    entry = select_platform(resolved, wanted, where)
    manifest = registry.get_manifest(repository, entry.digest)
    if not isinstance(manifest, ImageManifest):
        raise ManifestInvalid(f"{where}: the {wanted} entry of the index is itself an index")
    return manifest


def _unique_pullable(layers: tuple[Descriptor, ...]) -> list[Descriptor]:
    """Each layer once (images may repeat an empty layer), minus layers a registry may not serve."""
    seen: dict[str, Descriptor] = {}
    for layer in layers:
        if layer.distributable:
            seen.setdefault(layer.digest, layer)
    return list(seen.values())


def _warm_layers(registry: RegistryClient, repository: str, layers: list[Descriptor], concurrency: int) -> int:
    """Pull the layers a few at a time; the first failure cancels the ones not yet started and is raised."""
    if not layers:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="warm-layer") as pool:
        futures = [pool.submit(registry.warm_blob, repository, layer) for layer in layers]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failures = [error for future in futures if future in done and (error := future.exception()) is not None]
        if failures:
            raise failures[0]
    return sum(future.result() for future in futures)
