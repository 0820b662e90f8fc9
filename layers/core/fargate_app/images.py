"""Container image references: parsing, normalisation and the upstream registries ECR can cache.

The grammar is the one of CNCF distribution's ``reference`` package (distribution/reference/regexp.go), which
Docker, containerd and ECR all use: ``[domain/]path[:tag][@digest]``; a first component is a domain when it holds a
``.`` or a ``:`` or is ``localhost``. Normalisation follows Docker's rules (``docker.io`` when no domain,
``library/`` for single-component Docker Hub names, ``latest`` when neither tag nor digest is given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# distribution/reference/regexp.go
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = re.compile(rf"^{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
SHA256_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX = 255

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Upstream:
    """A public registry that an ECR pull-through-cache rule can point at."""

    host: str  # as written in image references
    registry_url: str  # ECR's upstreamRegistryUrl
    kind: str  # ECR's upstreamRegistry enum value
    default_prefix: str
    needs_credential: bool


# ECR user guide, "Creating a pull through cache rule": supported upstream registries, their URLs and which
# require a Secrets Manager credential (Chainguard: its pull token, chainguard-dev/edu "ECR pull through cache").
# Default prefixes are docs/design.md §2's.
UPSTREAMS: dict[str, Upstream] = {
    u.host: u
    for u in (
        Upstream("public.ecr.aws", "public.ecr.aws", "ecr-public", "ecr-public", False),
        Upstream("registry.k8s.io", "registry.k8s.io", "k8s", "k8s", False),
        Upstream("quay.io", "quay.io", "quay", "quay", False),
        Upstream(DOCKER_HUB, "registry-1.docker.io", "docker-hub", "docker-hub", True),
        Upstream("ghcr.io", "ghcr.io", "github-container-registry", "github", True),
        Upstream("registry.gitlab.com", "registry.gitlab.com", "gitlab-container-registry", "gitlab", True),
        Upstream("cgr.dev", "cgr.dev", "chainguard", "chainguard", True),
    )
}
_AZURE_SUFFIX = ".azurecr.io"
# Another private ECR registry (ECR-to-ECR pull through cache): authorized by IAM, not by a secret.
ECR_REGISTRY = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9])\.amazonaws\.com$")
SUPPORTED_UPSTREAMS = (
    "public.ecr.aws, registry.k8s.io, quay.io, docker.io, ghcr.io, registry.gitlab.com, cgr.dev, *.azurecr.io, "
    "<account>.dkr.ecr.<region>.amazonaws.com"
)


def upstream_for_host(host: str) -> Upstream | None:
    if host in UPSTREAMS:
        return UPSTREAMS[host]
    if host.endswith(_AZURE_SUFFIX) and DOMAIN.fullmatch(host):
        return Upstream(host, host, "azure-container-registry", "azure", True)
    ecr = ECR_REGISTRY.fullmatch(host)
    if ecr:
        return Upstream(host, host, "ecr", f"ecr-{ecr['account']}", False)
    return None


def upstream_for_registry_url(registry_url: str) -> Upstream | None:
    for upstream in UPSTREAMS.values():
        if upstream.registry_url == registry_url:
            return upstream
    return upstream_for_host(registry_url)


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def upstream(self) -> Upstream | None:
        return upstream_for_host(self.registry)

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


class InvalidReference(ValueError):
    """The text is not a valid image reference; the message says which rule it breaks."""


def parse_reference(text: str) -> ImageReference:
    """Parse and normalise an image reference the way Docker does.

    Raises:
        InvalidReference: the text breaks the reference grammar.
    """
    if not text or text != text.strip():
        raise InvalidReference("must be a non-empty image reference without surrounding spaces")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not DIGEST.fullmatch(digest):
            raise InvalidReference(f"digest {digest!r} is not of the form algorithm:hex")
        if not digest.startswith("sha256:"):
            # ECR and the pull-through cache address images by sha256 only, and the warm step can verify only a
            # sha256 pin: another algorithm would be fetched unverified or fail after resources were created.
            raise InvalidReference(
                f"digest algorithm {digest.partition(':')[0]!r} is not supported: use a sha256 digest"
            )
        if not SHA256_DIGEST.fullmatch(digest):
            raise InvalidReference("a sha256 digest must be 64 lowercase hex characters")
    name, tag = remainder, None
    last_slash = remainder.rfind("/")
    if ":" in remainder[last_slash + 1 :]:
        name, tag = remainder.rsplit(":", 1)
        if not TAG.fullmatch(tag):
            raise InvalidReference(f"tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must be at most {NAME_TOTAL_LENGTH_MAX} characters")
    components = name.split("/")
    first = components[0]
    if len(components) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not DOMAIN.fullmatch(first):
            raise InvalidReference(f"registry host {first!r} is not a valid domain[:port]")
        registry, path = first.lower(), components[1:]
    else:
        registry, path = DOCKER_HUB, components
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if len(path) == 1:
            path = ["library", *path]
    for component in path:
        if not PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"repository component {component!r} must be lowercase letters and digits separated by '.', '_', "
                "'__' or '-'"
            )
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository="/".join(path), tag=tag, digest=digest)
