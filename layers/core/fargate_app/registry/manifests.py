"""Image manifests of the OCI distribution API: media types, parsing, digest checks and platform selection.

Pure functions over bytes, so that every rule here is unit-testable without a registry. References: OCI image-spec
(``image-index.md``, ``manifest.md``, ``descriptor.md``, ``config.md``) and Docker's "Image Manifest V2, Schema 2".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fargate_app.errors import ManifestInvalid, PlatformNotAvailable, truncate
from fargate_app.images import SHA256_DIGEST

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Without this Accept header a registry may answer with a legacy schema1 manifest (distribution does for Docker Hub
# clients that send none) or refuse an OCI index; ECR honours the order given.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
# Layers a registry is not allowed to serve (Windows base layers live at `urls`): nothing for the cache to hold.
NON_DISTRIBUTABLE_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)
# distribution refuses manifests over 4 MiB; anything larger is not a manifest we should trust or hold in memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Index entries for attestations and signatures carry this platform; they are not images anyone can run.
_UNKNOWN_PLATFORM = "unknown/unknown"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/architecture[/variant]``, as in ``docker pull --platform``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} must be os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def satisfies(self, wanted: Platform) -> bool:
        """True when an image for this platform runs where ``wanted`` is asked for.

        arm64 images are ``v8`` whether or not they say so (containerd's platform normaliser does the same).
        """
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if wanted.variant is None:
            return True
        mine = self.variant or ("v8" if self.architecture == "arm64" else None)
        return mine == wanted.variant

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None

    @property
    def distributable(self) -> bool:
        return self.media_type not in NON_DISTRIBUTABLE_LAYERS


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index or a Docker manifest list: one manifest per platform."""

    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...]

    @property
    def platforms(self) -> list[str]:
        names = {str(d.platform) for d in self.manifests if d.platform is not None}
        return sorted(names - {_UNKNOWN_PLATFORM})


@dataclass(frozen=True)
class ImageManifest:
    """A single-platform image: one config blob and its layers."""

    media_type: str
    digest: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def verify_manifest_digest(body: bytes, header_digest: str | None, reference: str, where: str) -> str:
    """The manifest's digest, after checking the body against what the registry and the caller claim.

    ``Docker-Content-Digest`` is the registry's claim; a digest reference is the caller's pin. Only sha256 is
    accepted: it is what every registry on ECR's upstream list computes, and what a Deployment pins.

    Raises:
        ManifestInvalid: the body does not hash to the claimed or pinned digest.
    """
    actual = sha256_digest(body)
    if header_digest and header_digest != actual:
        raise ManifestInvalid(
            f"{where}: the registry said the manifest is {truncate(header_digest, 80)} but its body hashes to "
            f"{actual}; the cache or the upstream served a corrupted manifest"
        )
    if reference.startswith("sha256:") and reference != actual:
        raise ManifestInvalid(f"{where}: asked for manifest {reference} but the registry served {actual}")
    return actual


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{what} is not JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid(f"{what} is not a JSON object")
    return document


def _listed(document: dict[str, Any], key: str, what: str) -> list[Any]:
    entries = document.get(key)
    if not isinstance(entries, list):
        raise ManifestInvalid(f"{what} has no {key} list")
    return entries


def _descriptor(entry: Any, where: str, *, with_platform: bool = False) -> Descriptor:
    if not isinstance(entry, dict):
        raise ManifestInvalid(f"{where}: a descriptor is not a JSON object")
    digest, size, media_type = entry.get("digest"), entry.get("size"), entry.get("mediaType")
    if not isinstance(digest, str) or not SHA256_DIGEST.match(digest):
        # Also keeps arbitrary text out of the blob URLs built from it.
        raise ManifestInvalid(f"{where}: descriptor digest {truncate(str(digest), 80)!r} is not a sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}: descriptor {digest} has no valid size")
    if not isinstance(media_type, str):
        raise ManifestInvalid(f"{where}: descriptor {digest} has no mediaType")
    platform = None
    raw_platform = entry.get("platform")
    if with_platform and isinstance(raw_platform, dict):
        os_name, arch = raw_platform.get("os"), raw_platform.get("architecture")
        if isinstance(os_name, str) and isinstance(arch, str):
            variant = raw_platform.get("variant")
            platform = Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)
    return Descriptor(media_type=media_type, digest=digest, size=size, platform=platform)


def parse_manifest(body: bytes, content_type: str | None, digest: str, where: str) -> ImageIndex | ImageManifest:
    """Parse a manifest body whose digest was already verified.

    The media type is the body's ``mediaType`` when present (it is part of what the digest covers), else the
    response's Content-Type (OCI makes ``mediaType`` optional).

    Raises:
        ManifestInvalid: not JSON, an unsupported media type (schema1, a Helm chart, …), or a malformed descriptor.
    """
    document = _json_object(body, f"{where}: the manifest")
    header_type = (content_type or "").split(";")[0].strip()
    media_type = document.get("mediaType") or header_type
    if media_type in INDEX_MEDIA_TYPES:
        entries = _listed(document, "manifests", f"{where}: the image index")
        manifests = tuple(_descriptor(entry, where, with_platform=True) for entry in entries)
        return ImageIndex(media_type=media_type, digest=digest, manifests=manifests)
    if media_type in IMAGE_MEDIA_TYPES:
        layers = tuple(
            _descriptor(layer, where) for layer in _listed(document, "layers", f"{where}: the image manifest")
        )
        config = _descriptor(document.get("config"), where)
        return ImageManifest(media_type=media_type, digest=digest, config=config, layers=layers)
    raise ManifestInvalid(
        f"{where}: unsupported manifest media type {truncate(str(media_type), 100)!r}; expected an OCI or Docker v2 "
        "image manifest or index (legacy schema1 images cannot run on EKS Fargate's containerd)"
    )


def select_platform(index: ImageIndex, wanted: Platform, where: str) -> Descriptor:
    """The index entry for ``wanted``: an exact variant match first, then the first entry that satisfies it.

    Raises:
        PlatformNotAvailable: naming the platforms the index does hold.
        ManifestInvalid: the entry for the platform is not an image manifest (an index inside an index).
    """
    candidates = [d for d in index.manifests if d.platform is not None and d.platform.satisfies(wanted)]
    if not candidates:
        available = ", ".join(index.platforms) or "none"
        raise PlatformNotAvailable(
            f"{where} has no image for platform {wanted} (it has: {available}); choose one of those platforms or "
            "another image"
        )
    exact = [d for d in candidates if d.platform is not None and d.platform.variant == wanted.variant]
    chosen = (exact or candidates)[0]
    if chosen.media_type not in IMAGE_MEDIA_TYPES:
        raise ManifestInvalid(
            f"{where}: the entry for {wanted} is {truncate(chosen.media_type, 100)!r}, not an image manifest"
        )
    return chosen


def check_config_platform(config: bytes, wanted: Platform, where: str) -> Platform:
    """The platform an image config declares, after checking that it satisfies ``wanted``.

    A single-platform tag carries its platform only in the config blob (``os``, ``architecture``, ``variant``).

    Raises:
        PlatformNotAvailable: the image is built for another platform.
        ManifestInvalid: the config is not an image config.
    """
    document = _json_object(config, f"{where}: the image config")
    os_name, arch, variant = document.get("os"), document.get("architecture"), document.get("variant")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        raise ManifestInvalid(f"{where}: the image config names no os/architecture")
    declared = Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)
    if not declared.satisfies(wanted):
        raise PlatformNotAvailable(
            f"{where} is a single-platform image for {declared}, not {wanted}; choose platform {declared} or an "
            "image built for the platform you need"
        )
    return declared
