"""The registry client's rules, where a real registry cannot produce the case: a tiny scripted HTTP registry
serves exactly the bytes, statuses and headers each test needs; images come from the sandbox's OCI builder."""

from __future__ import annotations

import base64
import gzip
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import Stubber
from unit_support import stubbed

from fargate_app.errors import (
    AccessDenied,
    ImageNotFound,
    InvalidRequest,
    ManifestInvalid,
    PermanentError,
    RegistryUnavailable,
    UpstreamAuthFailed,
)
from fargate_app.images import parse_reference
from fargate_app.registry import RegistryCredentials, RetryPolicy, cache_repository, ecr_credentials, warm_image_cache
from fargate_app.registry import warm as warm_module
from fargate_app.registry.client import CHUNK_BYTES, USER_AGENT, RegistryClient
from fargate_app.registry.manifests import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    Descriptor,
    sha256_digest,
)
from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.oci_images import Blob, Image, build_image, sample_image

FAST = RetryPolicy(retries=2, backoff_factor=0.001, backoff_max=0.01, backoff_jitter=0.0)
REPO = "/v2/ecr-public/nginx/nginx"
IMAGE = "public.ecr.aws/nginx/nginx:stable"
WHAT = "manifest stable of repository ecr-public/nginx/nginx"  # how the errors name the manifest request


# --- a scripted registry ------------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after these many bytes of the body


class ScriptedRegistry(TrackedHTTPServer):
    """Answers each path from a script (answers in order, the last one repeats) and records what it was sent."""

    def __init__(self) -> None:
        super().__init__(_ScriptedHandler)
        self.script: dict[str, list[Answer]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.start("scripted-registry")

    def on(self, path: str, *answers: Answer) -> None:
        self.script[path] = list(answers)

    def serve_image(self, image: Image, tag: str = "stable", *, digest_header: str | None = None) -> None:
        self.on(
            f"{REPO}/manifests/{tag}",
            Answer(
                200,
                image.manifest.data,
                {"Content-Type": image.manifest.media_type, "Docker-Content-Digest": digest_header or image.digest},
            ),
        )
        for blob in image.blobs:
            self.on(f"{REPO}/blobs/{blob.digest}", Answer(200, blob.data))

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            answers = self.script.get(path)
            if not answers:
                return Answer(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository unknown"}]}')
            return answers.pop(0) if len(answers) > 1 else answers[0]


class _ScriptedHandler(QuietHandler):
    server: ScriptedRegistry

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers.items())))
        answer = self.server.next_answer(self.path)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.cut_after is None:
            self.wfile.write(answer.body)
        else:
            self.wfile.write(answer.body[: answer.cut_after])
            self.close_connection = True


@pytest.fixture
def registry() -> Iterator[ScriptedRegistry]:
    server = ScriptedRegistry()
    yield server
    server.stop()


class Tokens:
    """A credential source that counts how often it is asked; the n-th call returns the n-th password."""

    def __init__(self, endpoint: str, *passwords: str) -> None:
        self.endpoint, self.passwords, self.calls = endpoint, list(passwords), 0

    def __call__(self) -> RegistryCredentials:
        password = self.passwords[min(self.calls, len(self.passwords) - 1)]
        self.calls += 1
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return RegistryCredentials(endpoint=self.endpoint, authorization=f"Basic {token}")


def amd64_image() -> Image:
    return sample_image("nginx", "linux/amd64")


# --- references and cache paths -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "prefix", "repository", "reference"),
    [
        ("redis", "docker-hub", "docker-hub/library/redis", "latest"),
        ("docker.io/library/redis:7", "docker-hub", "docker-hub/library/redis", "7"),
        ("index.docker.io/bitnami/redis:7.2", "docker-hub", "docker-hub/bitnami/redis", "7.2"),
        ("public.ecr.aws/nginx/nginx:stable", "ecr-public", "ecr-public/nginx/nginx", "stable"),
        ("registry.k8s.io/pause:3.10", "k8s", "k8s/pause", "3.10"),
        ("quay.io/prometheus/busybox", "quay", "quay/prometheus/busybox", "latest"),
        ("registry.gitlab.com/group/sub/project/app:1", "gitlab", "gitlab/group/sub/project/app", "1"),
        (
            "ghcr.io/stefanprodan/podinfo@sha256:" + "a" * 64,
            "team/github",
            "team/github/stefanprodan/podinfo",
            "sha256:" + "a" * 64,
        ),
    ],
)
def test_cache_repository_is_prefix_plus_upstream_repository(
    image: str, prefix: str, repository: str, reference: str
) -> None:
    parsed = parse_reference(image)
    assert cache_repository(prefix, parsed) == repository
    assert parsed.reference == reference


# --- the client against a scripted registry -----------------------------------------------------------------------


def test_manifest_request_asks_for_every_supported_type_with_the_ecr_token(registry: ScriptedRegistry) -> None:
    # Given a single-platform image
    image = amd64_image()
    registry.serve_image(image)
    # When it is warmed
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    # Then the manifest was asked for with the four media types, OCI index first, and Basic AWS:<token>
    path, headers = registry.seen[0]
    assert path == f"{REPO}/manifests/stable"
    assert headers["Accept"] == MANIFEST_ACCEPT
    assert MANIFEST_ACCEPT.split(", ") == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"AWS:pw").decode()
    assert (warmed.digest, warmed.layers_warmed) == (image.digest, 2)
    assert sorted(p for p, _ in registry.seen[1:]) == sorted(f"{REPO}/blobs/{b.digest}" for b in image.blobs)


def test_a_manifest_that_does_not_match_its_digest_header_is_manifest_invalid(registry: ScriptedRegistry) -> None:
    registry.serve_image(amd64_image(), digest_header="sha256:" + "1" * 64)
    with pytest.raises(ManifestInvalid, match="corrupted manifest"):
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)


def test_a_corrupted_layer_is_retryable_and_names_the_blob(registry: ScriptedRegistry) -> None:
    # Given a layer whose bytes (same length) do not hash to the digest the verified manifest names
    image = amd64_image()
    registry.serve_image(image)
    layer = image.layers[1]
    registry.on(f"{REPO}/blobs/{layer.digest}", Answer(200, bytes(layer.size)))
    # Then the step reports a retryable registry fault naming the blob
    with pytest.raises(RegistryUnavailable, match=layer.digest):
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)


def test_403_refreshes_the_token_once_then_is_upstream_auth_failed(registry: ScriptedRegistry) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(403, b'{"errors":[{"code":"DENIED","message":"token expired"}]}'))
    tokens = Tokens(registry.url, "old", "new")
    with pytest.raises(UpstreamAuthFailed, match="403 DENIED: token expired"):
        warm_image_cache(IMAGE, "ecr-public", credentials=tokens, retry=FAST)
    assert tokens.calls == 2
    assert [h["Authorization"] for _, h in registry.seen] == [
        "Basic " + base64.b64encode(b"AWS:old").decode(),
        "Basic " + base64.b64encode(b"AWS:new").decode(),
    ]


def test_429_is_retried_honouring_retry_after(registry: ScriptedRegistry) -> None:
    image = amd64_image()
    registry.serve_image(image)
    throttled = Answer(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}', {"Retry-After": "0"})
    registry.on(f"{REPO}/manifests/stable", throttled, throttled, registry.script[f"{REPO}/manifests/stable"][0])
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert warmed.digest == image.digest
    assert [p for p, _ in registry.seen].count(f"{REPO}/manifests/stable") == 3


def test_unknown_repository_is_image_not_found(registry: ScriptedRegistry) -> None:
    with pytest.raises(ImageNotFound, match=r"image public.ecr.aws/nginx/nginx:stable not found through registry 127"):
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)


def test_other_client_errors_are_permanent_with_the_registry_words(registry: ScriptedRegistry) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(400, b'{"errors":[{"code":"UNSUPPORTED","message":"nope"}]}'))
    with pytest.raises(PermanentError, match="400 UNSUPPORTED: nope"):
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (Answer(400, b"plain words from a proxy"), "400: plain words from a proxy"),
        (Answer(400, b'{"errors": []}'), '400: {"errors": []}'),
        (Answer(400, b'{"errors": ["not an object"]}'), "400"),
        (Answer(400, b'{"errors": [{"message": "no code"}]}'), "400: no code"),
        (Answer(400, b'{"detail": "another shape"}'), '400: {"detail": "another shape"}'),
        (Answer(400, b"x" * 300), "400: " + "x" * 199 + "…"),
    ],
)
def test_an_error_body_of_any_shape_is_reported_in_the_registrys_words(
    registry: ScriptedRegistry, answer: Answer, said: str
) -> None:
    registry.on(f"{REPO}/manifests/stable", answer)
    with pytest.raises(PermanentError) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert (
        str(refused.value)
        == f"registry {registry.url.removeprefix('http://')} answered {WHAT} (image {IMAGE}) with {said}"
    )


@pytest.mark.parametrize("code", ["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NAME_INVALID", "TAG_INVALID"])
def test_a_not_found_code_is_image_not_found_whatever_the_status(registry: ScriptedRegistry, code: str) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(400, json.dumps({"errors": [{"code": code}]}).encode()))
    with pytest.raises(ImageNotFound) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith(
        f"answered 400 {code}; check that the image exists in public.ecr.aws and that the cache rule points at it"
    )


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_a_registry_fault_that_outlasts_the_retries_is_registry_unavailable(
    registry: ScriptedRegistry, status: int
) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(status, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}'))
    with pytest.raises(RegistryUnavailable) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith(f"with {status} UNAVAILABLE: busy after 2 retries; the step will be retried")


def test_an_auth_failure_says_which_grants_and_credential_matter(registry: ScriptedRegistry) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}'))
    with pytest.raises(UpstreamAuthFailed) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "a", "b"), retry=FAST)
    assert str(refused.value) == (
        f"registry {registry.url.removeprefix('http://')} refused {WHAT} (image {IMAGE}) with a "
        "fresh ECR token (401 UNAUTHORIZED: no); the function's role needs ecr:BatchGetImage, "
        "ecr:GetDownloadUrlForLayer, ecr:BatchImportUpstreamImage and ecr:CreateRepository on the cache prefix, and "
        "the cache rule's upstream credential must be accepted by the upstream"
    )


def test_a_registry_that_does_not_listen_is_registry_unavailable() -> None:
    closed = ScriptedRegistry()
    url = closed.url
    closed.stop()
    with pytest.raises(RegistryUnavailable) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(url, "pw"), retry=FAST)
    assert str(refused.value) == (
        f"registry {url.removeprefix('http://')} did not answer {WHAT} (image {IMAGE}) after 2 retries "
        "(NewConnectionError); the step will be retried"
    )


def test_blob_redirects_are_followed_without_the_token(registry: ScriptedRegistry) -> None:
    # Given a registry that, like ECR, redirects blob downloads to storage on another host
    storage = ScriptedRegistry()
    try:
        image = amd64_image()
        registry.serve_image(image)
        for blob in image.blobs:
            registry.on(
                f"{REPO}/blobs/{blob.digest}",
                Answer(307, headers={"Location": f"{storage.url}/bucket/{blob.digest}?sig=x"}),
            )
            storage.on(f"/bucket/{blob.digest}?sig=x", Answer(200, blob.data))
        # When the image is warmed
        warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
        # Then every blob came from storage, which never saw the registry token
        assert warmed.bytes_warmed == sum(blob.size for blob in image.blobs)
        assert len(storage.seen) == 3
        assert all("Authorization" not in headers for _, headers in storage.seen)
        assert all("Authorization" in headers for _, headers in registry.seen)
    finally:
        storage.stop()


def test_duplicate_layers_are_pulled_once(registry: ScriptedRegistry) -> None:
    image = amd64_image()
    document = json.loads(image.manifest.data)
    document["layers"].append(document["layers"][0])
    manifest = Blob(image.manifest.media_type, json.dumps(document).encode())
    registry.serve_image(replace(image, manifest=manifest))
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert warmed.layers_warmed == 2
    assert [p for p, _ in registry.seen].count(f"{REPO}/blobs/{image.layers[0].digest}") == 1


# --- ECR credentials ----------------------------------------------------------------------------------------------
@pytest.fixture
def stubbed_ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    with stubbed(monkeypatch, "fargate_app.registry.credentials", "ecr") as stubber:
        yield stubber


def _token_answer(token: str, endpoint: str) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(hours=12)
    return {"authorizationData": [{"authorizationToken": token, "expiresAt": expires, "proxyEndpoint": endpoint}]}


def test_ecr_token_becomes_basic_auth_for_the_returned_endpoint(stubbed_ecr: Stubber) -> None:
    token = base64.b64encode(b"AWS:secret-password").decode()
    stubbed_ecr.add_response(
        "get_authorization_token", _token_answer(token, "https://111122223333.dkr.ecr.us-west-2.amazonaws.com/"), {}
    )
    credentials = ecr_credentials()
    assert credentials.endpoint == "https://111122223333.dkr.ecr.us-west-2.amazonaws.com"
    assert credentials.host == "111122223333.dkr.ecr.us-west-2.amazonaws.com"
    assert credentials.authorization == f"Basic {token}"
    assert token not in repr(credentials)


NO_TOKEN = "ECR GetAuthorizationToken returned no token or no registry endpoint"
NOT_USER_PASSWORD = "ECR GetAuthorizationToken returned a token that is not base64 user:password"
ENDPOINT = "https://111122223333.dkr.ecr.us-west-2.amazonaws.com"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"authorizationData": []}, NO_TOKEN),
        ({}, NO_TOKEN),
        ({"authorizationData": [{"proxyEndpoint": ENDPOINT}]}, NO_TOKEN),
        ({"authorizationData": [{"authorizationToken": b64(b"AWS:pw")}]}, NO_TOKEN),
        (_token_answer("bm90LWEtcGFpcg==", ENDPOINT), NOT_USER_PASSWORD),  # base64 of "not-a-pair"
        (_token_answer(b64(b":pw"), ENDPOINT), NOT_USER_PASSWORD),  # no user
        (_token_answer(b64(b":pw:with-colon"), ENDPOINT), NOT_USER_PASSWORD),  # no user, a colon in the password
        (_token_answer(b64(b"\xff:pw"), ENDPOINT), NOT_USER_PASSWORD),  # not UTF-8
        # base64 of AWS:pw with a character outside the alphabet: a lenient decoder would drop it and accept
        (_token_answer(b64(b"AWS:pw")[:2] + "!" + b64(b"AWS:pw")[2:], ENDPOINT), NOT_USER_PASSWORD),
        (
            _token_answer(b64(b"AWS:pw"), "ftp://r.example"),
            "ECR GetAuthorizationToken returned a registry endpoint that is not a URL: ftp://r.example",
        ),
        (
            _token_answer(b64(b"AWS:pw"), "https://"),
            "ECR GetAuthorizationToken returned a registry endpoint that is not a URL: https://",
        ),
    ],
)
def test_an_unusable_token_answer_is_refused_with_what_is_wrong(
    stubbed_ecr: Stubber, answer: dict[str, Any], message: str
) -> None:
    stubbed_ecr.add_response("get_authorization_token", answer, {})
    with pytest.raises(UpstreamAuthFailed) as refused:
        ecr_credentials()
    assert refused.value.message == message


def test_ecr_refusing_the_token_call_is_wrapped(stubbed_ecr: Stubber) -> None:
    stubbed_ecr.add_client_error("get_authorization_token", "AccessDeniedException", "not authorized")
    with pytest.raises(AccessDenied, match="get an ECR authorization token: not authorized; grant it"):
        ecr_credentials()


# --- what the client sends and how much it reads --------------------------------------------------------------------
def padded_manifest(image: Image, size: int) -> Image:
    """``image`` with its manifest padded by an annotation to exactly ``size`` bytes (a registry allows any size)."""
    document = json.loads(image.manifest.data)
    document["annotations"] = {"pad": ""}
    bare = len(json.dumps(document).encode())
    document["annotations"]["pad"] = "x" * (size - bare)
    return replace(image, manifest=Blob(image.manifest.media_type, json.dumps(document).encode()))


def test_every_request_names_the_client_and_blobs_accept_any_type(registry: ScriptedRegistry) -> None:
    image = amd64_image()
    registry.serve_image(image)
    warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert {headers["User-Agent"] for _, headers in registry.seen} == {USER_AGENT}
    assert {headers["Accept"] for path, headers in registry.seen if "/blobs/" in path} == {"*/*"}


def test_bodies_longer_than_a_read_chunk_are_counted_and_joined_whole(registry: ScriptedRegistry) -> None:
    # Given an image whose manifest, config and layer each span several 64 KiB reads
    big = build_image(
        "linux/amd64", [{"data": random.Random(7).randbytes(3 * CHUNK_BYTES)}], cmd=("x" * 2 * CHUNK_BYTES,)
    )
    image = padded_manifest(big, 2 * CHUNK_BYTES + 1)
    registry.serve_image(image)
    # When it is warmed, then every byte was verified against its digest and counted once
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert (warmed.digest, warmed.bytes_warmed) == (image.digest, sum(blob.size for blob in image.blobs))


def test_a_manifest_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(registry: ScriptedRegistry) -> None:
    at_limit = padded_manifest(amd64_image(), MAX_MANIFEST_BYTES)
    registry.serve_image(at_limit)
    assert warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST).digest == (
        at_limit.digest
    )
    over = padded_manifest(amd64_image(), MAX_MANIFEST_BYTES + 1)
    registry.serve_image(over)
    with pytest.raises(ManifestInvalid) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value) == (
        f"{WHAT} in registry {registry.url.removeprefix('http://')} (image {IMAGE}) is larger than 4194304 bytes, "
        "the limit for a manifest"
    )


def test_a_config_is_read_up_to_its_limit_and_refused_beyond_it(registry: ScriptedRegistry) -> None:
    image = amd64_image()
    registry.serve_image(image)
    config = Descriptor(image.config.media_type, image.config.digest, image.config.size)
    with RegistryClient(Tokens(registry.url, "pw"), image=IMAGE, retry=FAST) as client:
        assert client.read_blob("ecr-public/nginx/nginx", config, limit=image.config.size) == image.config.data
        with pytest.raises(ManifestInvalid) as refused:
            client.read_blob("ecr-public/nginx/nginx", config, limit=image.config.size - 1)
    assert str(refused.value) == (
        f"blob {image.config.digest} of image {IMAGE} announces {image.config.size} bytes, more than the "
        f"{image.config.size - 1} an image config may have"
    )


def test_an_error_body_is_read_up_to_8_kib(registry: ScriptedRegistry) -> None:
    # Given a JSON error body longer than the client reads: its words are read as text, not parsed
    body = json.dumps({"errors": [{"code": "UNSUPPORTED", "message": "nope"}], "trace": "t" * 9000}).encode()
    registry.on(f"{REPO}/manifests/stable", Answer(400, body))
    with pytest.raises(PermanentError) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith(f"with 400: {body[:199].decode()}…")


@pytest.mark.parametrize(
    ("answer", "error", "ending"),
    [
        pytest.param(
            Answer(404, b"not here"),
            ImageNotFound,
            f"{WHAT} answered 404: not here; check that the image exists in public.ecr.aws and that the cache rule "
            "points at it",
            id="404-without-a-code",
        ),
        pytest.param(Answer(405, b"method"), PermanentError, f"{WHAT} (image {IMAGE}) with 405: method", id="405"),
        pytest.param(Answer(409, b"conflict"), PermanentError, f"{WHAT} (image {IMAGE}) with 409: conflict", id="409"),
        pytest.param(
            Answer(300, b"choose"), PermanentError, f"{WHAT} (image {IMAGE}) with 300: choose", id="300-is-no-success"
        ),
    ],
)
def test_the_status_alone_decides_when_the_body_has_no_code(
    registry: ScriptedRegistry, answer: Answer, error: type[Exception], ending: str
) -> None:
    registry.on(f"{REPO}/manifests/stable", answer)
    with pytest.raises(error) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert type(refused.value) is error
    assert str(refused.value).endswith(ending)


def test_a_client_refreshes_its_token_once_whatever_the_number_of_refusals(registry: ScriptedRegistry) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}'))
    tokens = Tokens(registry.url, "a", "b", "c")
    with RegistryClient(tokens, image=IMAGE, retry=FAST) as client:
        for _ in range(2):
            with pytest.raises(UpstreamAuthFailed):
                client.get_manifest("ecr-public/nginx/nginx", "stable")
    assert tokens.calls == 2
    assert len(registry.seen) == 3  # the first request, its retry with the new token, the second request


def test_a_registry_that_stops_answering_is_registry_unavailable_after_the_read_timeout() -> None:
    # Given a registry that accepts the connection and never answers
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        patient = RetryPolicy(retries=0, backoff_factor=0, backoff_jitter=0, read_timeout=0.3, connect_timeout=1)
        with pytest.raises(RegistryUnavailable, match=r"did not answer .* after 0 retries \(ReadTimeoutError\)"):
            warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(url, "pw"), retry=patient)
    finally:
        silent.close()


def test_a_registry_that_never_accepts_the_connection_is_registry_unavailable_after_the_connect_timeout() -> None:
    # Given a registry whose accept queue is full (listen backlog 0, one connection waiting): the kernel drops
    # further SYNs, so a connect without a timeout of its own waits out the kernel's SYN retransmissions (about two
    # minutes, net.ipv4.tcp_syn_retries=6) and then fails with the same TimeoutError
    busy = socket.create_server(("127.0.0.1", 0), backlog=0)
    waiting = socket.create_connection(busy.getsockname())
    try:
        url = f"http://127.0.0.1:{busy.getsockname()[1]}"
        hasty = RetryPolicy(retries=0, backoff_factor=0, backoff_jitter=0, read_timeout=30, connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as refused:
            warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(url, "pw"), retry=hasty)
        # Then the step gives up at its connect timeout, not the kernel's (a bound 100 times the setting: not a
        # speed figure, the difference between the two)
        assert time.monotonic() - started < 30
        assert str(refused.value) == (
            f"registry 127.0.0.1:{busy.getsockname()[1]} did not answer {WHAT} (image {IMAGE}) after 0 retries "
            "(ConnectTimeoutError); the step will be retried"
        )
    finally:
        waiting.close()
        busy.close()


def test_a_blob_is_verified_as_stored_whatever_content_encoding_a_cdn_declares(registry: ScriptedRegistry) -> None:
    # Given a layer (a gzip tarball) served with Content-Encoding: gzip, as some CDNs label such files
    image = amd64_image()
    registry.serve_image(image)
    for layer in image.layers:
        registry.on(f"{REPO}/blobs/{layer.digest}", Answer(200, layer.data, {"Content-Encoding": "gzip"}))
    # When it is warmed, then its bytes are hashed as stored, not decompressed
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert warmed.bytes_warmed == sum(blob.size for blob in image.blobs)


def test_an_error_body_is_read_decoded(registry: ScriptedRegistry) -> None:
    body = gzip.compress(b'{"errors":[{"code":"UNSUPPORTED","message":"nope"}]}')
    registry.on(f"{REPO}/manifests/stable", Answer(400, body, {"Content-Encoding": "gzip"}))
    with pytest.raises(PermanentError) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith("with 400 UNSUPPORTED: nope")


def test_an_error_body_cut_short_leaves_the_status_alone(registry: ScriptedRegistry) -> None:
    registry.on(f"{REPO}/manifests/stable", Answer(400, b'{"errors":[{"code":"UNSUPPORTED"}]}', cut_after=5))
    with pytest.raises(PermanentError) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith(f"{WHAT} (image {IMAGE}) with 400")


def test_a_long_error_message_is_cut_to_200_characters(registry: ScriptedRegistry) -> None:
    message = "m" * 300
    registry.on(
        f"{REPO}/manifests/stable", Answer(400, json.dumps({"errors": [{"code": "X", "message": message}]}).encode())
    )
    with pytest.raises(PermanentError) as refused:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(refused.value).endswith(f"with 400 X: {'m' * 199}…")


def test_a_registry_gone_after_the_token_refresh_names_the_request(registry: ScriptedRegistry) -> None:
    # Given a registry that refuses the first token and is gone by the time a new one is tried
    registry.on(f"{REPO}/manifests/stable", Answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}'))
    tokens = Tokens(registry.url, "pw")

    def refresh_stops_the_registry() -> RegistryCredentials:
        if tokens.calls:
            registry.stop()
        return tokens()

    with pytest.raises(RegistryUnavailable) as gone:
        warm_image_cache(IMAGE, "ecr-public", credentials=refresh_stops_the_registry, retry=FAST)
    assert f"did not answer {WHAT} (image {IMAGE}) after 2 retries" in str(gone.value)


def test_the_media_type_of_a_manifest_without_one_comes_from_its_content_type(registry: ScriptedRegistry) -> None:
    # Given a manifest whose body names no mediaType (schema 2 allows it), served with its Content-Type
    image = amd64_image()
    document = json.loads(image.manifest.data)
    del document["mediaType"]
    bare = replace(image, manifest=Blob(image.manifest.media_type, json.dumps(document).encode()))
    registry.serve_image(bare)
    assert (
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST).digest == bare.digest
    )


def test_a_manifest_the_registry_cannot_vouch_for_is_named_where_it_came_from(registry: ScriptedRegistry) -> None:
    where = f"{WHAT} in registry {registry.url.removeprefix('http://')} (image {IMAGE})"
    image = amd64_image()
    # A body that does not hash to the digest the registry names
    registry.serve_image(image, digest_header="sha256:" + "1" * 64)
    with pytest.raises(ManifestInvalid) as corrupted:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(corrupted.value) == (
        f"{where}: the registry said the manifest is sha256:{'1' * 64} but its body hashes to {image.digest}; the "
        "cache or the upstream served a corrupted manifest"
    )
    # A body that is no JSON (its digest header right)
    body = b"<html>proxy error</html>"
    registry.on(f"{REPO}/manifests/stable", Answer(200, body, {"Docker-Content-Digest": sha256_digest(body)}))
    with pytest.raises(ManifestInvalid) as not_json:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert str(not_json.value).startswith(f"{where}: the manifest is not JSON (")
    # A manifest cut short
    registry.serve_image(image)
    registry.on(f"{REPO}/manifests/stable", Answer(200, image.manifest.data, cut_after=7))
    with pytest.raises(RegistryUnavailable) as cut:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=RetryPolicy(retries=0))
    assert str(cut.value) == (
        f"registry {registry.url.removeprefix('http://')} broke off {WHAT} (image {IMAGE}) after 7 bytes "
        "(ProtocolError); the transfer will be retried"
    )


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        pytest.param(
            lambda layer: Answer(200, layer.data, cut_after=10),
            RegistryUnavailable,
            "registry {host} broke off blob {digest} of repository ecr-public/nginx/nginx (image {image}) after 10 "
            "bytes (ProtocolError); the transfer will be retried",
            id="cut-short",
        ),
        pytest.param(  # urllib3 raises a bare ValueError for a Location that is no URL
            lambda layer: Answer(307, headers={"Location": "http://[bad"}),
            RegistryUnavailable,
            "registry {host} failed blob {digest} of repository ecr-public/nginx/nginx (image {image}): ValueError; "
            "the step will be retried",
            id="unfollowable-redirect",
        ),
        pytest.param(
            lambda layer: Answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}'),
            ImageNotFound,
            "image {image} not found through registry {host}: blob {digest} of repository ecr-public/nginx/nginx "
            "answered 404 BLOB_UNKNOWN: gone; check that the image exists in public.ecr.aws and that the cache rule "
            "points at it",
            id="missing",
        ),
    ],
)
def test_a_layer_request_that_fails_names_the_blob(
    registry: ScriptedRegistry, answer: Callable[[Blob], Answer], error: type[Exception], says: str
) -> None:
    # Given one layer's request failing (cut short, redirected nowhere, missing)
    image = amd64_image()
    registry.serve_image(image)
    layer = image.layers[0]
    registry.on(f"{REPO}/blobs/{layer.digest}", answer(layer))
    # When the image is warmed, then the step's error names the blob, the registry and the image
    with pytest.raises(error) as failed:
        warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=RetryPolicy(retries=0))
    assert str(failed.value) == says.format(host=registry.url.removeprefix("http://"), digest=layer.digest, image=IMAGE)


# --- the warm step's own rules --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "platform", "rule"),
    [
        ("nginx ", "linux/amd64", "must be a non-empty image reference without surrounding spaces"),
        (IMAGE, "amd64", "platform 'amd64' must be os/architecture[/variant]"),
    ],
)
def test_a_reference_or_platform_that_does_not_parse_is_the_requests_problem(
    image: str, platform: str, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        warm_image_cache(image, "ecr-public", platform, credentials=Tokens("http://127.0.0.1:9", "pw"), retry=FAST)
    assert refused.value.problems == {f"image {image!r} for platform {platform!r}": rule}


def test_an_image_without_layers_warms_its_config_alone(registry: ScriptedRegistry) -> None:
    image = build_image("linux/amd64", [])
    registry.serve_image(image)
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert (warmed.layers_warmed, warmed.bytes_warmed) == (0, len(image.config.data))


def test_the_warm_is_timed_to_the_millisecond(registry: ScriptedRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.serve_image(amd64_image())
    moments = iter([100.0, 101.23456])
    monkeypatch.setattr(warm_module, "time", SimpleNamespace(monotonic=lambda: next(moments)))
    warmed = warm_image_cache(IMAGE, "ecr-public", credentials=Tokens(registry.url, "pw"), retry=FAST)
    assert warmed.duration_seconds == 1.235
