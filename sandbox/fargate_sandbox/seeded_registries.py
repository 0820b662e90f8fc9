"""The seeded upstream registries of docs/design.md §6 and one pull-through proxy per upstream, all real CNCF distribution.

Each upstream gets its own ``docker-registry`` process holding a small real OCI image (nginx is a multi-arch index,
linux/amd64 + linux/arm64; redis is a Docker v2 image like Docker Hub's). The registry front
(``registry_front.RegistryFront``) routes ``/v2/<prefix>/…`` of each cache rule to these proxies.

Credentialed upstreams (Docker Hub, GitHub, Chainguard) do not demand their credential on pulls here: distribution 2.8's proxy
presents ``proxy.username/password`` only to upstreams that use token auth (it keys them by the token realm URL,
proxy/proxyauth.go), and the seeded upstreams use no token server. The credential is still checked where ECR checks
it: ``CreatePullThroughCacheRule`` (the secret must exist) and ``ValidatePullThroughCacheRule`` (its content must be
the upstream's). See docs/sandbox.md.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from fargate_sandbox.lifecycle import StartStop
from fargate_sandbox.oci_images import RegistryPusher, multi_arch_sample, sample_image
from fargate_sandbox.registry_procs import RegistryProcess, start_proxy, start_upstream
from fargate_sandbox.seeds import ECR_UPSTREAM, UPSTREAM_CREDENTIALS


@dataclass(frozen=True)
class SeededImage:
    upstream_registry_url: str  # ECR's upstreamRegistryUrl of the rule that caches it
    repository: str
    tag: str
    multi_arch: bool = False
    docker_format: bool = False


SEEDED_IMAGES = (
    SeededImage("public.ecr.aws", "nginx/nginx", "stable", multi_arch=True),
    SeededImage("registry.k8s.io", "pause", "3.10"),
    SeededImage("quay.io", "prometheus/busybox", "latest"),
    SeededImage("registry-1.docker.io", "library/redis", "7", docker_format=True),
    SeededImage("ghcr.io", "stefanprodan/podinfo", "6.7.0"),
    SeededImage("cgr.dev", "chainguard/nginx", "latest"),
    SeededImage(ECR_UPSTREAM, "team/api", "1.0"),
)


@dataclass
class UpstreamRegistry:
    upstream: RegistryProcess
    proxy: RegistryProcess
    digests: dict[str, str]  # "<repository>:<tag>" → the digest the upstream computed


class SeededRegistries(StartStop):
    """Start every seeded upstream and its proxy (in parallel: each is a process that takes a moment to bind)."""

    def __init__(self, workdir: Path | None = None, credentials: Mapping[str, dict[str, str]] | None = None) -> None:
        self._own_workdir = workdir is None
        self._workdir = workdir
        self._credentials = dict(credentials or UPSTREAM_CREDENTIALS)
        self.registries: dict[str, UpstreamRegistry] = {}

    def start(self) -> SeededRegistries:
        stack = self._stack = ExitStack()
        if self._workdir is None:
            self._workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fargate-sandbox-")))
        try:
            with ThreadPoolExecutor(max_workers=len(SEEDED_IMAGES)) as pool:
                started = list(pool.map(self._start_one, SEEDED_IMAGES))
            for image, registry in zip(SEEDED_IMAGES, started, strict=True):
                self.registries[image.upstream_registry_url] = registry
        except BaseException:
            self.stop()
            raise
        return self

    def _start_one(self, image: SeededImage) -> UpstreamRegistry:
        assert self._workdir is not None and self._stack is not None
        slug = re.sub(r"[^a-z0-9]+", "-", image.upstream_registry_url)
        upstream = self._stack.enter_context(start_upstream(self._workdir, name=f"upstream-{slug}"))
        pusher = RegistryPusher(upstream.url)
        name = image.repository.rsplit("/", 1)[-1]
        if image.multi_arch:
            digest = pusher.push_index(image.repository, multi_arch_sample(name), image.tag)
        else:
            digest = pusher.push_image(
                image.repository, sample_image(name, "linux/amd64", docker=image.docker_format), image.tag
            )
        secret = self._credentials.get(image.upstream_registry_url)
        remote = (secret["username"], secret["accessToken"]) if secret else None  # what ECR would present
        proxy = self._stack.enter_context(
            start_proxy(self._workdir, upstream.url, name=f"proxy-{slug}", remote_credentials=remote)
        )
        return UpstreamRegistry(upstream, proxy, {f"{image.repository}:{image.tag}": digest})

    @property
    def proxies(self) -> dict[str, str]:
        """upstreamRegistryUrl → base URL of its pull-through proxy (what ``Sandbox(registry_proxies=…)`` takes)."""
        return {url: registry.proxy.url for url, registry in self.registries.items()}

    def digest(self, upstream_registry_url: str, repository: str, tag: str) -> str:
        return self.registries[upstream_registry_url].digests[f"{repository}:{tag}"]
