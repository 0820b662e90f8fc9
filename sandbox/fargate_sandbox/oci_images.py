"""Small, real OCI images built in memory and pushed to a registry over the distribution API.

Every byte is deterministic (fixed tar mtimes and owners, gzip without timestamp or file name, JSON in a fixed key
order), so an image built twice has the same digests. Pushing uses the API a ``docker push`` uses: a blob upload
session (``POST /v2/<name>/blobs/uploads/`` then ``PUT <location>?digest=``) per blob, then ``PUT`` of the manifest;
the digests returned are the ones the registry computed (``Docker-Content-Digest``), checked against ours.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FIXED_MTIME = 1_704_067_200  # 2024-01-01T00:00:00Z
FIXED_CREATED = "2024-01-01T00:00:00Z"


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """A single-platform image built for ``platform`` (``os/architecture[/variant]``): its manifest (a Blob whose
    media type is the manifest's), config and layers."""

    platform: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    """A multi-platform OCI image index and the images it lists."""

    manifest: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def image_for(self, platform: str) -> Image:
        return next(image for image in self.images if image.platform == platform)


def platform_fields(platform: str) -> dict[str, str]:
    """``os/architecture[/variant]`` as an image config and an index entry's ``platform`` spell it."""
    os_name, architecture, *variant = platform.split("/")
    return {"architecture": architecture, "os": os_name, **({"variant": variant[0]} if variant else {})}


def tar_gz(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A gzip-compressed tar of ``files`` (path → content) and its diff_id (sha256 of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(content), FIXED_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            archive.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def build_image(
    platform: str, layers: Sequence[Mapping[str, bytes]], *, docker: bool = False, cmd: Sequence[str] = ("/bin/sh",)
) -> Image:
    """An image for ``platform`` (``os/arch[/variant]``) with one layer per mapping of files.

    ``docker=True`` gives a Docker v2 schema 2 image, else an OCI one.
    """
    layer_type, config_type, manifest_type = (
        (DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST) if docker else (OCI_LAYER, OCI_CONFIG, OCI_MANIFEST)
    )
    built = [tar_gz(files) for files in layers]
    layer_blobs = tuple(Blob(layer_type, data) for data, _ in built)
    config_document: dict[str, object] = {
        "created": FIXED_CREATED,
        **platform_fields(platform),
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in built]},
        "history": [{"created": FIXED_CREATED, "created_by": "fargate-sandbox oci_images"} for _ in built],
    }
    config = Blob(config_type, _json(config_document))
    manifest_document = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in layer_blobs],
    }
    return Image(platform, Blob(manifest_type, _json(manifest_document)), config, layer_blobs)


def build_index(images: Sequence[Image]) -> Index:
    entries = [image.manifest.descriptor(platform=platform_fields(image.platform)) for image in images]
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return Index(Blob(OCI_INDEX, _json(document)), tuple(images))


def sample_image(name: str, platform: str, *, docker: bool = False) -> Image:
    """A two-layer image whose files name the image and the platform, so every platform's layers differ."""
    arch = platform.replace("/", "-")
    return build_image(
        platform,
        [
            {
                f"etc/{name}/release": f"{name} sample image\n".encode(),
                f"etc/{name}/platform": f"{platform}\n".encode(),
            },
            {f"usr/share/{name}/index.html": f"<h1>{name} on {arch}</h1>\n".encode()},
        ],
        docker=docker,
    )


def multi_arch_sample(name: str, platforms: Sequence[str] = ("linux/amd64", "linux/arm64/v8")) -> Index:
    return build_index([sample_image(name, platform) for platform in platforms])


class PushError(RuntimeError):
    """The registry refused a push; the message has the status and the start of its answer."""


class RegistryPusher:
    """Pushes blobs and manifests to ``base_url`` (``http://127.0.0.1:<port>``), optionally with Basic auth."""

    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
        self._headers: dict[str, str] = {}
        if auth is not None:
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()

    def _request(
        self, method: str, url: str, expected: int, *, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> urllib3.BaseHTTPResponse:
        response = self._http.request(method, url, body=body, headers={**self._headers, **headers})
        if response.status != expected:
            raise PushError(f"{method} {urlsplit(url).path} answered {response.status}: {response.data[:300]!r}")
        return response

    def push_blob(self, repository: str, blob: Blob) -> str:
        started = self._request("POST", f"{self.base_url}/v2/{repository}/blobs/uploads/", 202)
        location = urljoin(self.base_url + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        finished = self._request(
            "PUT",
            f"{location}{separator}{urlencode({'digest': blob.digest})}",
            201,
            body=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return self._checked(finished, blob)

    def push_manifest(self, repository: str, reference: str, manifest: Blob) -> str:
        answer = self._request(
            "PUT",
            f"{self.base_url}/v2/{repository}/manifests/{reference}",
            201,
            body=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        return self._checked(answer, manifest)

    def push_image(self, repository: str, image: Image, tag: str | None = None) -> str:
        """Blobs first (the registry checks a manifest's references), then the manifest under ``tag`` or digest."""
        for blob in image.blobs:
            self.push_blob(repository, blob)
        return self.push_manifest(repository, tag or image.digest, image.manifest)

    def push_index(self, repository: str, index: Index, tag: str) -> str:
        for image in index.images:
            self.push_image(repository, image)
        return self.push_manifest(repository, tag, index.manifest)

    @staticmethod
    def _checked(answer: urllib3.BaseHTTPResponse, blob: Blob) -> str:
        computed = answer.headers.get("Docker-Content-Digest", "")
        if computed != blob.digest:
            raise PushError(f"the registry computed {computed or 'no digest'} for a blob whose digest is {blob.digest}")
        return computed
