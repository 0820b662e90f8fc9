"""The registry front: ECR-style Basic auth, prefix → proxy mapping, streaming, cache repository on first pull."""

from __future__ import annotations

import base64
import http.client as http_client
import json
import ssl
import time
from typing import Any

import pytest
import urllib3
from sandbox_test_support import StubUpstream, unique

from fargate_sandbox.sandbox import Sandbox

http = urllib3.PoolManager(retries=False)


def _login(sandbox: Sandbox) -> dict[str, str]:
    data = sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]
    return {"Authorization": f"Basic {data['authorizationToken']}"}


def test_token_points_at_the_registry_front_and_opens_it(sandbox: Sandbox) -> None:
    # When a client asks ECR for a registry token
    data = sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    # Then the token is AWS:<password> for the sandbox registry, which accepts it on /v2/
    assert data["proxyEndpoint"] == sandbox.registry_url
    assert user == "AWS" and password
    answer = http.request(
        "GET", f"{data['proxyEndpoint']}/v2/", headers={"Authorization": f"Basic {data['authorizationToken']}"}
    )
    assert answer.status == 200


@pytest.mark.parametrize("credentials", [None, "AWS:not-issued-by-the-sandbox", "someone:else"])
def test_wrong_or_missing_token_is_401_with_a_basic_challenge(sandbox: Sandbox, credentials: str | None) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()} if credentials else {}
    answer = http.request("GET", f"{sandbox.registry_url}/v2/", headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert json.loads(answer.data)["errors"][0]["code"] == "UNAUTHORIZED"


def test_unknown_prefix_is_name_unknown(sandbox: Sandbox) -> None:
    answer = http.request(
        "GET", f"{sandbox.registry_url}/v2/{unique('nope')}/x/manifests/latest", headers=_login(sandbox)
    )
    assert answer.status == 404
    assert json.loads(answer.data)["errors"][0]["code"] == "NAME_UNKNOWN"


def test_first_pull_creates_the_cache_repository(sandbox: Sandbox, stub_upstream: StubUpstream) -> None:
    # Given a rule for the stub upstream under a fresh prefix, and no repository under it yet
    ecr = sandbox.boto3_client("ecr")
    prefix = unique("ecr-public")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws")
    repository = f"{prefix}/nginx/nginx"
    assert repository not in [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    # When the image's manifest and blob are pulled through the front
    headers = _login(sandbox)
    manifest = http.request("GET", f"{sandbox.registry_url}/v2/{repository}/manifests/stable", headers=headers)
    blob = http.request(
        "GET",
        f"{sandbox.registry_url}/v2/{repository}/blobs/{stub_upstream.blob_digest}",
        headers=headers,
        preload_content=False,
    )
    blob_bytes = b"".join(blob.stream(4096))
    # Then the upstream saw the path without the prefix, the bytes are the upstream's,
    assert "/v2/nginx/nginx/manifests/stable" in stub_upstream.paths
    assert manifest.status == 200 and manifest.data == stub_upstream.manifest
    assert blob_bytes == stub_upstream.blob
    # and ECR now has the cache repository with the pulled image under its tag and real digest
    assert repository in [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert [(i["imageDigest"], i.get("imageTags")) for i in images] == [(stub_upstream.manifest_digest, ["stable"])]


def test_longest_prefix_wins(sandbox: Sandbox, stub_upstream: StubUpstream) -> None:
    # Given "a" → k8s (no proxy in this sandbox) and "a/b" → the stub upstream
    ecr = sandbox.boto3_client("ecr")
    outer = unique("lp")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=outer, upstreamRegistryUrl="registry.k8s.io")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=f"{outer}/b", upstreamRegistryUrl="public.ecr.aws")
    # When a path under the longer prefix is pulled
    answer = http.request(
        "GET", f"{sandbox.registry_url}/v2/{outer}/b/nginx/nginx/manifests/stable", headers=_login(sandbox)
    )
    # Then the longer rule's upstream answered
    assert answer.status == 200
    assert answer.data == stub_upstream.manifest


def test_a_digest_is_served_only_after_a_pull_by_tag_imported_it(sandbox: Sandbox) -> None:
    # Given a rule for the seeded quay.io upstream and the digest its busybox tag has upstream
    assert sandbox.upstreams is not None
    digest = sandbox.upstreams.digest("quay.io", "prometheus/busybox", "latest")
    prefix = unique("quay")
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io"
    )
    by_digest = f"{sandbox.registry_url}/v2/{prefix}/prometheus/busybox/manifests/{digest}"
    by_tag = f"{sandbox.registry_url}/v2/{prefix}/prometheus/busybox/manifests/latest"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json", **_login(sandbox)}
    # When it is pulled by digest first, then by tag, then by digest again
    before = http.request("GET", by_digest, headers=accept)
    tagged = http.request("GET", by_tag, headers=accept)
    after = http.request("GET", by_digest, headers=accept)
    # Then only the pull by tag imports it
    assert before.status == 404 and json.loads(before.data)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert tagged.status == 200 and tagged.headers["Docker-Content-Digest"] == digest
    assert after.status == 200


def test_accept_sent_as_several_header_lines_reaches_the_proxy_whole(sandbox: Sandbox) -> None:
    # Given an OCI image behind a fresh rule (CNCF distribution serves an OCI manifest only to a client that accepts
    # its type), and a client that sends its Accept types as several header lines, the OCI type last (skopeo and
    # containerd send several lines; RFC 9110 §5.3 makes them one list)
    prefix = unique("quay")
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io"
    )
    url = urllib3.util.parse_url(sandbox.registry_url)
    connection_class = http_client.HTTPSConnection if url.scheme == "https" else http_client.HTTPConnection
    options = {"context": ssl._create_unverified_context()} if url.scheme == "https" else {}
    connection = connection_class(url.host, url.port, timeout=10, **options)
    try:
        connection.putrequest("GET", f"/v2/{prefix}/prometheus/busybox/manifests/latest")
        connection.putheader("Authorization", _login(sandbox)["Authorization"])
        connection.putheader("Accept", "application/vnd.docker.distribution.manifest.v2+json")
        connection.putheader("Accept", "application/vnd.oci.image.manifest.v1+json")
        connection.endheaders()
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    # Then the proxy saw the OCI type too and serves the manifest
    assert answer.status == 200, body[:300]
    assert answer.getheader("Content-Type") == "application/vnd.oci.image.manifest.v1+json"
    assert json.loads(body)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_a_pull_by_tag_answers_once_the_image_is_imported(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a rule for the seeded quay.io upstream, and the cache's import of a pulled manifest made slow (as under
    # load: it creates the cache repository and puts the image through ECR's API)
    prefix = unique("quay")
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io"
    )
    record_pull = sandbox.cache.record_pull

    def slow_import(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.5)
        record_pull(*args, **kwargs)

    monkeypatch.setattr(sandbox.cache, "record_pull", slow_import)
    manifests = f"{sandbox.registry_url}/v2/{prefix}/prometheus/busybox/manifests"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json", **_login(sandbox)}
    # When a client pulls the image by tag, then at once by the digest the answer named (as a warm pins it), over
    # another connection
    tagged = http.request("GET", f"{manifests}/latest", headers=accept)
    assert tagged.status == 200, tagged.data[:300]
    digest = tagged.headers["Docker-Content-Digest"]
    other_connection = urllib3.PoolManager(retries=False)  # the same one would wait for the first request's handler
    pinned = other_connection.request("GET", f"{manifests}/{digest}", headers=accept)
    # Then the digest is served: ECR answers a pull through its cache once it has imported the image, so nothing
    # the answer names is unknown a moment later (the front recorded the pull only after answering: ten warms at
    # once saw MANIFEST_UNKNOWN for a platform manifest of the index they had just pulled)
    assert pinned.status == 200, pinned.data[:300]
    assert pinned.headers["Docker-Content-Digest"] == digest
