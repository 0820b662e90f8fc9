"""A small client of the OCI distribution API (registry v2), on urllib3.

urllib3 ships with botocore in the Lambda runtime, so this costs the layer nothing; its ``Retry`` gives exponential
backoff with jitter for connection errors and 429/5xx and honours ``Retry-After``. Everything else a pull needs is
here: Basic auth refreshed once on 401, the manifest Accept header, bodies streamed in 64 KiB chunks and hashed as
they pass (a layer is never held in memory), and registry answers turned into the error contract of docs/design.md §4.

Redirects are followed (ECR answers blob requests with a redirect to a presigned S3 URL); urllib3 drops the
``Authorization`` header whenever a redirect leaves the registry's host, so the token never reaches S3.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.util.retry import Retry

from fargate_app.errors import (
    FargateAppError,
    ImageNotFound,
    ManifestInvalid,
    PermanentError,
    RegistryUnavailable,
    UpstreamAuthFailed,
    truncate,
)
from fargate_app.images import parse_reference
from fargate_app.registry.credentials import CredentialSource, RegistryCredentials
from fargate_app.registry.manifests import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    parse_manifest,
    verify_manifest_digest,
)

CHUNK_BYTES = 64 * 1024
USER_AGENT = "fargate-app-provisioner/0.1 (cache warmer)"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NAME_INVALID", "TAG_INVALID"})
MAX_REDIRECTS = 5
_ERROR_BODY_BYTES = 8 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before the step gives up and lets the state machine retry it (with its own backoff).

    ``retries`` counts the tries after the first one, separately for connection errors, read errors and retried
    statuses. The sleep before retry n (n ≥ 2) is ``backoff_factor * 2**(n-1)`` plus up to ``backoff_jitter``,
    capped at ``backoff_max``; a ``Retry-After`` header (capped at ``retry_after_max``) replaces it.
    """

    retries: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 8.0
    backoff_jitter: float = 0.5
    retry_after_max: int = 30
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def urllib3_retry(self) -> Retry:
        return Retry(
            total=None,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            redirect=MAX_REDIRECTS,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=RETRIED_STATUSES,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=self.backoff_jitter,
            retry_after_max=self.retry_after_max,
            # The last 429/5xx answer comes back to us so that its status and error code reach the message.
            raise_on_status=False,
        )


class RegistryClient:
    """Pulls manifests and blobs of one image from one registry (the private registry fronting the cache).

    Thread-safe: layers are fetched from several threads through one connection pool.
    """

    def __init__(
        self,
        credentials: CredentialSource,
        *,
        image: str,
        retry: RetryPolicy | None = None,
        max_connections: int = 4,
    ) -> None:
        self._source = credentials
        self._credentials = credentials()
        self._refreshed = False
        self._lock = threading.Lock()
        self._retry = retry or RetryPolicy()
        self._http = urllib3.PoolManager(
            num_pools=8,  # the registry plus the storage hosts its redirects lead to
            maxsize=max_connections,
            retries=self._retry.urllib3_retry(),
            timeout=urllib3.Timeout(connect=self._retry.connect_timeout, read=self._retry.read_timeout),
        )
        self.image = image
        self._upstream = parse_reference(image).registry

    @property
    def registry(self) -> str:
        """The registry host, as an image reference writes it."""
        return self._credentials.host

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.clear()

    # --- the registry API ---
    def get_manifest(self, repository: str, reference: str) -> ImageIndex | ImageManifest:
        """GET a manifest by tag or digest; its body is checked against its digest before it is parsed.

        Raises:
            ImageNotFound, UpstreamAuthFailed, RegistryUnavailable, ManifestInvalid.
        """
        what = f"manifest {reference} of repository {repository}"
        response = self._get(f"/v2/{repository}/manifests/{reference}", accept=MANIFEST_ACCEPT, what=what)
        try:
            chunks: list[bytes] = []
            received = self._stream(response, chunks.append, limit=MAX_MANIFEST_BYTES, what=what)
        finally:
            response.release_conn()
        where = f"{what} in registry {self.registry} (image {self.image})"
        if received > MAX_MANIFEST_BYTES:
            raise ManifestInvalid(f"{where} is larger than {MAX_MANIFEST_BYTES} bytes, the limit for a manifest")
        body = b"".join(chunks)
        digest = verify_manifest_digest(body, response.headers.get("Docker-Content-Digest"), reference, where)
        return parse_manifest(body, response.headers.get("Content-Type"), digest, where)

    def read_blob(self, repository: str, descriptor: Descriptor, *, limit: int) -> bytes:
        """A small blob (an image config) in memory, verified against its descriptor.

        Raises:
            ManifestInvalid: the descriptor announces more than ``limit`` bytes.
            ImageNotFound, UpstreamAuthFailed, RegistryUnavailable: as for layers.
        """
        if descriptor.size > limit:
            raise ManifestInvalid(
                f"blob {descriptor.digest} of image {self.image} announces {descriptor.size} bytes, more than the "
                f"{limit} an image config may have"
            )
        chunks: list[bytes] = []
        self._fetch_blob(repository, descriptor, chunks.append)
        return b"".join(chunks)

    def warm_blob(self, repository: str, descriptor: Descriptor) -> int:
        """Pull a blob through the registry and discard it; the number of bytes pulled.

        Raises:
            ImageNotFound: the registry (or its upstream) does not have the blob.
            RegistryUnavailable: 429/5xx/connection errors after retries, or bytes that do not match the digest.
            UpstreamAuthFailed: 401/403 after one token refresh.
        """
        return self._fetch_blob(repository, descriptor, lambda chunk: None)

    # --- plumbing ---
    def _fetch_blob(self, repository: str, descriptor: Descriptor, sink: Callable[[bytes], None]) -> int:
        what = f"blob {descriptor.digest} of repository {repository}"
        response = self._get(f"/v2/{repository}/blobs/{descriptor.digest}", accept="*/*", what=what)
        hasher = hashlib.sha256()

        def hash_and_sink(chunk: bytes) -> None:
            hasher.update(chunk)
            sink(chunk)

        try:
            received = self._stream(response, hash_and_sink, limit=descriptor.size, what=what)
        finally:
            response.release_conn()
        actual = "sha256:" + hasher.hexdigest()
        if received != descriptor.size or actual != descriptor.digest:
            # The manifest naming this blob was verified, so the manifest is right and the bytes are wrong: a
            # transfer cut short or a cache still importing the blob. That is the registry's transient fault, so
            # it is RegistryUnavailable (the state machine retries a bounded number of times), not ManifestInvalid.
            raise RegistryUnavailable(
                f"registry {self.registry} served {received} bytes hashing to {actual} for {what} (image "
                f"{self.image}), expected {descriptor.size} bytes with that digest; the transfer will be retried"
            )
        return received

    def _stream(
        self, response: urllib3.BaseHTTPResponse, sink: Callable[[bytes], None], *, limit: int, what: str
    ) -> int:
        received = 0
        try:
            # decode_content=False: digests cover the bytes as stored, whatever Content-Encoding a CDN adds.
            for chunk in response.stream(CHUNK_BYTES, decode_content=False):
                received += len(chunk)
                if received > limit:
                    break  # the digest check reports it; no need to read a runaway body to its end
                sink(chunk)
        except HTTPError as exc:
            raise RegistryUnavailable(
                f"registry {self.registry} broke off {what} (image {self.image}) after {received} bytes "
                f"({type(exc).__name__}); the transfer will be retried"
            ) from exc
        return received

    def _current(self) -> RegistryCredentials:
        with self._lock:
            return self._credentials

    def _refresh(self, rejected: RegistryCredentials) -> RegistryCredentials | None:
        """New credentials after a 401/403 — at most once per client, however many threads were refused."""
        with self._lock:
            if self._credentials is not rejected:
                return self._credentials  # another thread already refreshed
            if self._refreshed:
                return None
            self._refreshed = True
            self._credentials = self._source()
            return self._credentials

    def _get(self, path: str, *, accept: str, what: str) -> urllib3.BaseHTTPResponse:
        credentials = self._current()
        response = self._send(credentials, path, accept, what)
        # 401 is a missing or wrong token; ECR answers an expired one with 403 DENIED and no challenge ("Your
        # authorization token has expired", seen by ORAS users in flipt-io/flipt#3043). One new token may help either.
        if response.status in (401, 403):
            response.drain_conn()
            response.release_conn()
            fresh = self._refresh(credentials)
            if fresh is not None:
                response = self._send(fresh, path, accept, what)
        if 200 <= response.status < 300:
            return response
        try:
            raise self._error_for(response, what)
        finally:
            response.drain_conn()
            response.release_conn()

    def _send(self, credentials: RegistryCredentials, path: str, accept: str, what: str) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": credentials.authorization, "Accept": accept, "User-Agent": USER_AGENT}
        try:
            return self._http.request("GET", credentials.endpoint + path, headers=headers, preload_content=False)
        except MaxRetryError as exc:
            reason = type(exc.reason).__name__ if exc.reason else "no answer"
            raise RegistryUnavailable(
                f"registry {self.registry} did not answer {what} (image {self.image}) after "
                f"{self._retry.retries} retries ({reason}); the step will be retried"
            ) from exc
        except (HTTPError, ValueError) as exc:  # ValueError: a redirect to a Location urllib3 cannot parse
            raise RegistryUnavailable(
                f"registry {self.registry} failed {what} (image {self.image}): {type(exc).__name__}; the step will "
                "be retried"
            ) from exc

    def _error_for(self, response: urllib3.BaseHTTPResponse, what: str) -> FargateAppError:
        """The contract error for a non-2xx answer (distribution's error body: {"errors": [{code, message}]})."""
        status = response.status
        code, message = _error_detail(response)
        said = " ".join(part for part in (str(status), code) if part) + (f": {message}" if message else "")
        if status in (401, 403):
            return UpstreamAuthFailed(
                f"registry {self.registry} refused {what} (image {self.image}) with a fresh ECR token ({said}); "
                "the function's role needs ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, "
                "ecr:BatchImportUpstreamImage and ecr:CreateRepository on the cache prefix, and the cache rule's "
                "upstream credential must be accepted by the upstream"
            )
        if status == 404 or code in NOT_FOUND_CODES:
            return ImageNotFound(
                f"image {self.image} not found through registry {self.registry}: {what} answered {said}; check that "
                f"the image exists in {self._upstream} and that the cache rule points at it"
            )
        if status in RETRIED_STATUSES or status == 408:
            return RegistryUnavailable(
                f"registry {self.registry} answered {what} (image {self.image}) with {said} after "
                f"{self._retry.retries} retries; the step will be retried"
            )
        return PermanentError(f"registry {self.registry} answered {what} (image {self.image}) with {said}")


def _error_detail(response: urllib3.BaseHTTPResponse) -> tuple[str, str]:
    try:
        body = response.read(_ERROR_BODY_BYTES, decode_content=True)
    except HTTPError:
        return "", ""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0] if isinstance(errors[0], dict) else {}
        return str(first.get("code", "")), truncate(str(first.get("message", "")), 200)
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", truncate(body, 200)
