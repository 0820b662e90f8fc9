"""Fixtures: a fresh upstream + pull-through proxy + front per test (tmp_path storage, free ports), with the
sample images pushed, and ECR GetAuthorizationToken answers stubbed on a real ECR client."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from cache_topology import Cache, RegistryFront

from fargate_sandbox.oci_images import RegistryPusher, multi_arch_sample, sample_image
from fargate_sandbox.registry_procs import start_proxy, start_upstream


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Cache]:
    password = secrets.token_urlsafe(24)
    with (
        start_upstream(tmp_path) as upstream,
        start_proxy(tmp_path, upstream.url, htpasswd_users={"AWS": password}) as proxy,
    ):
        front = RegistryFront(proxy)
        try:
            pusher = RegistryPusher(upstream.url)
            nginx, redis = multi_arch_sample("nginx"), sample_image("redis", "linux/amd64", docker=True)
            arm_only = multi_arch_sample("busybox", platforms=("linux/arm64/v8",))
            yield Cache(
                upstream=upstream,
                proxy=proxy,
                front=front,
                password=password,
                nginx=nginx,
                nginx_digest=pusher.push_index("nginx/nginx", nginx, "stable"),
                redis=redis,
                redis_digest=pusher.push_image("library/redis", redis, "7"),
                arm_only=arm_only,
                arm_only_digest=pusher.push_index("prometheus/busybox", arm_only, "latest"),
            )
        finally:
            front.stop()


@pytest.fixture
def ecr_tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stubber]]:
    """Queue GetAuthorizationToken answers on a real ECR client (botocore validates them against ECR's model)
    and make it the client the warmer's credential source uses."""
    ecr = boto3.client("ecr", region_name="us-west-2")
    stubber = Stubber(ecr)
    monkeypatch.setattr("fargate_app.registry.credentials.client", lambda service: ecr)

    def queue(endpoint: str, *passwords: str) -> Stubber:
        for password in passwords:
            token = base64.b64encode(f"AWS:{password}".encode()).decode()
            answer = {
                "authorizationData": [
                    {
                        "authorizationToken": token,
                        "expiresAt": datetime.now(UTC) + timedelta(hours=12),
                        "proxyEndpoint": endpoint,
                    }
                ]
            }
            stubber.add_response("get_authorization_token", answer, {})
        return stubber

    with stubber:
        yield queue
