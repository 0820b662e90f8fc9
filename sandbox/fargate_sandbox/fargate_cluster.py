"""Cluster ``blog``'s Kubernetes API in the sandbox: the emulator with EKS authentication and Fargate scheduling.

design.md §6.7–6.8: the emulator serves HTTPS with a CA made at start (what ``DescribeCluster`` returns), accepts only
EKS bearer tokens that the sandbox's STS confirms, and schedules pods the way EKS Fargate does: a pod whose namespace
and labels match an ACTIVE Fargate profile gets its own ``fargate-ip-<ip>.<region>.compute.internal`` node and runs
only if its image resolves through the cache; otherwise it stays Pending (FailedScheduling) or fails to pull
(ErrImagePull, then ImagePullBackOff).
"""

from __future__ import annotations

import base64
import threading
import time
from typing import TYPE_CHECKING

import urllib3

from fargate_app.aws.eks import profile_matches
from kube_emulator import EksTokenAuthenticator, FargateLikeScheduler, KubeEmulator, PodTiming, SignatureVerifier

if TYPE_CHECKING:
    from fargate_sandbox.sandbox import Sandbox

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TOKEN_REUSE_SECONDS = 600  # ECR tokens last 12 hours; the kubelet refreshes long before


class CacheImageResolver:
    """What the kubelet's pull does on a Fargate node: resolve the pod's image reference through the private registry
    with a registry token (the pod execution role's). Returns None when it resolves, else the kubelet's message."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _authorization(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() - self._token[1] > TOKEN_REUSE_SECONDS:
                data = self._sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]
                self._token = (data["authorizationToken"], time.monotonic())
            return f"Basic {self._token[0]}"

    def __call__(self, image: str) -> str | None:
        registry = self._sandbox.registry_url.removeprefix("http://")
        failure = f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image "{image}"'
        host, _, remainder = image.partition("/")
        if host != registry:
            # The cluster's subnets are private: only the cache registry is reachable (no NAT in the sandbox).
            return f'Failed to pull image "{image}": rpc error: code = Unknown desc = failed to resolve reference: dial tcp {host}:443: i/o timeout'
        repository, reference = remainder.split("@", 1) if "@" in remainder else remainder.rsplit(":", 1)
        answer = self._http.request(
            "HEAD",
            f"{self._sandbox.registry_url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT, "Authorization": self._authorization()},
        )
        if answer.status == 200:
            return None
        return f'{failure}: failed to resolve reference "{image}": {image}: not found (HTTP {answer.status})'


def start_cluster(sandbox: Sandbox, cluster: str, version: str, pod_timing: PodTiming) -> KubeEmulator:
    """Start the emulator for ``cluster`` and make ``DescribeCluster`` point at it."""

    def matches_active_profile(namespace: str, labels: dict[str, str]) -> bool:
        return any(
            profile.get("status") == "ACTIVE" and profile_matches(profile, namespace, labels)
            for profile in sandbox.fargate_profiles(cluster)
        )

    scheduler = FargateLikeScheduler(
        sandbox.region, matches_active_profile, CacheImageResolver(sandbox), timing=pod_timing
    )
    # EKS asks STS whom the presigned GetCallerIdentity names; moto verifies no signature, so the sandbox checks the
    # SigV4 signature itself, with the secret of the sandbox's one credential: a token signed for another cluster
    # name or with another key is refused, as EKS refuses it.
    access_key, secret_key = sandbox.credentials
    verifier = SignatureVerifier(
        secret_for=lambda key: secret_key if key == access_key else None,
        arn_for=lambda key: f"arn:aws:iam::{sandbox.account_id}:user/sandbox",
    )
    authenticator = EksTokenAuthenticator(cluster, verifier)
    emulator = KubeEmulator(
        cluster=cluster, version=version, authenticator=authenticator, scheduler=scheduler, pod_timing=pod_timing
    )

    def injected_fault(method: str, path: str) -> tuple[int, str, str] | None:
        fault = sandbox.faults.take_kubernetes(method, path)
        return None if fault is None else (fault.status, fault.reason, fault.message)

    emulator.api.faults = injected_fault
    emulator.start()
    sandbox.set_cluster_endpoint(cluster, emulator.endpoint, emulator.ca_data)
    assert base64.b64decode(emulator.ca_data).startswith(b"-----BEGIN CERTIFICATE-----")
    return emulator
