"""Helpers of the sandbox conformance tests: a stub upstream registry and request builders."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fargate_sandbox.http_servers import QuietHandler, TrackedHTTPServer
from fargate_sandbox.sandbox import Sandbox

PROFILE_SECONDS = 3.0
STUB_UPSTREAM_URL = "public.ecr.aws"


class StubUpstream:
    """A tiny registry: one image ``nginx/nginx:stable`` (manifest + one blob), counting requests per path."""

    def __init__(self) -> None:
        self.blob = b"layer-bytes-" * 1000
        self.blob_digest = "sha256:" + hashlib.sha256(self.blob).hexdigest()
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": self.blob_digest,
                    "size": len(self.blob),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self.blob_digest,
                        "size": len(self.blob),
                    }
                ],
            }
        ).encode()
        self.manifest_digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.paths: list[str] = []
        stub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                stub.paths.append(self.path)
                if self.path in (
                    "/v2/nginx/nginx/manifests/stable",
                    f"/v2/nginx/nginx/manifests/{stub.manifest_digest}",
                ):
                    body, kind = stub.manifest, "application/vnd.oci.image.manifest.v1+json"
                elif self.path == f"/v2/nginx/nginx/blobs/{stub.blob_digest}":
                    body, kind = stub.blob, "application/octet-stream"
                else:
                    body, kind = (
                        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
                        "application/json",
                    )
                    self.send_response(404)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = TrackedHTTPServer(Handler)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def profile_args(sandbox: Sandbox, cluster: str, name: str, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "fargateProfileName": name,
        "clusterName": cluster,
        "podExecutionRoleArn": "arn:aws:iam::111122223333:role/AmazonEKSFargatePodExecutionRole",
        "subnets": list(sandbox.seeds.network.private_subnets),
        "selectors": [{"namespace": "fargate"}],
    }
    args.update(overrides)
    return args
