"""The OCI registry (distribution API v2) as the cache warmer sees it: ECR credentials, manifests, blobs.

- ``credentials``: ``GetAuthorizationToken`` → endpoint and Basic auth.
- ``manifests``: media types, parsing, digest checks, platform selection (pure, no I/O).
- ``client``: the HTTP client (urllib3): retries, token refresh, streaming, error mapping.
- ``warm``: the WarmImageCache step and its models.
"""

from fargate_app.registry.client import RegistryClient, RetryPolicy
from fargate_app.registry.credentials import RegistryCredentials, ecr_credentials
from fargate_app.registry.warm import (
    CacheRuleRef,
    WarmedImage,
    WarmImageCacheEvent,
    cache_repository,
    warm_image_cache,
)

__all__ = [
    "CacheRuleRef",
    "RegistryClient",
    "RegistryCredentials",
    "RetryPolicy",
    "WarmImageCacheEvent",
    "WarmedImage",
    "cache_repository",
    "ecr_credentials",
    "warm_image_cache",
]
