"""Cluster ``blog``'s Kubernetes API in the sandbox: the emulator with EKS authentication and Fargate scheduling.

The emulator serves HTTPS with a CA made at start (what ``DescribeCluster`` returns), accepts only EKS bearer tokens
that the sandbox's STS confirms, and schedules pods the way EKS Fargate does: a pod whose namespace and labels match an
ACTIVE Fargate profile *when it is created* is placed on Fargate with that profile (``kube_emulator.scheduling``), gets
its own ``fargate-ip-<ip>.<region>.compute.internal`` node and runs only if its image resolves through the cache with
that profile's pod execution role; otherwise it stays Pending (FailedScheduling) or fails to pull (ErrImagePull, then
ImagePullBackOff). Deleting a profile deletes the pods it placed. The profile matching is the emulator's own, never
the project's (a selector bug in production must be caught here, not copied).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from fargate_sandbox.eks_rules import FargateProfileRules
from fargate_sandbox.faults import FaultInjector
from fargate_sandbox.iam_enforcement import Authorizer
from kube_emulator import (
    EksTokenAuthenticator,
    FargateLikeScheduler,
    KubeEmulator,
    PodTiming,
    SignatureVerifier,
    rbac,
)
from kube_emulator.eks_access_policies import ACCESS_POLICIES
from kube_emulator.resources import BY_KIND
from kube_emulator.scheduling import FARGATE_PROFILE_KEY

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TOKEN_REUSE_SECONDS = 600  # ECR tokens last 12 hours; the kubelet refreshes long before


@dataclass(frozen=True)
class ClusterServices:
    """What the cluster uses of the emulated AWS around it, handed over explicitly (the Sandbox builds it)."""

    region: str
    account_id: str
    administrator_key: str  # the access key of the cluster's creator, who gets the cluster-admin access entry
    profiles: FargateProfileRules  # the cluster's Fargate profiles; told the endpoint; tells of deleted profiles
    iam: Authorizer  # whose key signed a token, and its secret (EKS asks STS)
    faults: FaultInjector
    registry_url: Callable[[], str]  # the private (cache) registry, as the kubelet reaches it
    aws_client: Callable[..., Any]  # a boto3 client factory pointed at the sandbox (STS, ECR for the kubelet)


class CacheImageResolver:
    """What the kubelet's pull does on a Fargate node: resolve the pod's image reference through the private registry
    with a registry token of the pod execution role (EKS user guide, "Amazon EKS Pod execution IAM role": the
    kubelet pulls with it), that of the ACTIVE profile that selects the pod. Returns None when it resolves, else the
    kubelet's message."""

    def __init__(self, services: ClusterServices, cluster: str) -> None:
        self._services = services
        self._cluster = cluster
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))
        self._tokens: dict[str, tuple[str, float]] = {}  # pod execution role ARN → (registry token, when issued)
        self._lock = threading.Lock()

    def _execution_role(self, pod: dict[str, Any]) -> str | None:
        """The pod execution role of the profile that placed the pod (its annotation)."""
        placed_by = (pod["metadata"].get("annotations") or {}).get(FARGATE_PROFILE_KEY)
        for profile in self._services.profiles.profiles(self._cluster):
            if profile["fargateProfileName"] == placed_by and profile.get("status") == "ACTIVE":
                return str(profile.get("podExecutionRoleArn") or "") or None
        return None

    def _authorization(self, role_arn: str) -> str:
        with self._lock:
            issued = self._tokens.get(role_arn)
            if issued is None or time.monotonic() - issued[1] > TOKEN_REUSE_SECONDS:
                credentials = self._services.aws_client("sts").assume_role(
                    RoleArn=role_arn, RoleSessionName="fargate-kubelet"
                )["Credentials"]
                ecr = self._services.aws_client(
                    "ecr",
                    aws_access_key_id=credentials["AccessKeyId"],
                    aws_secret_access_key=credentials["SecretAccessKey"],
                    aws_session_token=credentials["SessionToken"],
                )
                data = ecr.get_authorization_token()["authorizationData"][0]
                issued = (data["authorizationToken"], time.monotonic())
                self._tokens[role_arn] = issued
            return f"Basic {issued[0]}"

    def __call__(self, image: str, pod: dict[str, Any]) -> str | None:
        registry_url = self._services.registry_url()
        registry = registry_url.removeprefix("http://")
        failure = f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image "{image}"'
        host, _, remainder = image.partition("/")
        if host != registry:
            # The cluster's subnets are private: only the cache registry is reachable (no NAT in the sandbox).
            return f'Failed to pull image "{image}": rpc error: code = Unknown desc = failed to resolve reference: dial tcp {host}:443: i/o timeout'
        role_arn = self._execution_role(pod)
        if role_arn is None:
            return f"{failure}: no pod execution role to pull with"
        try:
            authorization = self._authorization(role_arn)
        except Exception as exc:  # the kubelet reports the failed login as a failed pull
            return f"{failure}: failed to get the registry token of {role_arn}: {exc}"
        repository, reference = remainder.split("@", 1) if "@" in remainder else remainder.rsplit(":", 1)
        answer = self._http.request(
            "HEAD",
            f"{registry_url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT, "Authorization": authorization},
        )
        if answer.status == 200:
            return None
        if answer.status == 403:
            return f"{failure}: pull access denied, repository does not exist or may require authorization: {answer.status}"
        return f'{failure}: failed to resolve reference "{image}": {image}: not found (HTTP {answer.status})'


def start_cluster(services: ClusterServices, cluster: str, version: str, pod_timing: PodTiming) -> KubeEmulator:
    """Start the emulator for ``cluster`` and make ``DescribeCluster`` point at it; ``stop_cluster`` undoes both."""

    scheduler = FargateLikeScheduler(
        services.region,
        lambda: services.profiles.profiles(cluster),
        CacheImageResolver(services, cluster),
        timing=pod_timing,
    )
    # EKS asks STS whom the presigned GetCallerIdentity names; moto verifies no signature, so the sandbox checks the
    # SigV4 signature itself, with the secret of the key that signed it (the administrator's or a role session's the
    # sandbox issued): a token signed for another cluster name or with another key is refused, as EKS refuses it.
    verifier = SignatureVerifier(secret_for=services.iam.secret_for, arn_for=services.iam.arn_for)
    authenticator = EksTokenAuthenticator(cluster, verifier)
    # EKS authorizes through access entries: the cluster's creator (the sandbox's administrator) has one with
    # AmazonEKSClusterAdminPolicy, as EKS makes it with bootstrapClusterCreatorAdminPermissions; a deployed stack adds
    # its own (Workflows installs the template's AWS::EKS::AccessEntry resources).
    emulator: KubeEmulator  # made below; the authorizer reads its store from the first request on
    authorizer = rbac.Authorizer(
        services.account_id, lambda kind, namespace: emulator.store.list(BY_KIND[kind], namespace), ACCESS_POLICIES
    )
    creator = services.iam.arn_for(services.administrator_key) or ""
    authorizer.add_entry(
        rbac.AccessEntry(creator, policies=(rbac.AccessPolicyAssociation("AmazonEKSClusterAdminPolicy"),))
    )
    emulator = KubeEmulator(
        cluster=cluster,
        version=version,
        authenticator=authenticator,
        scheduler=scheduler,
        pod_timing=pod_timing,
        authorizer=authorizer,
    )

    def injected_fault(method: str, path: str) -> tuple[int, str, str] | None:
        fault = services.faults.take_kubernetes(method, path)
        return None if fault is None else (fault.status, fault.reason, fault.message)

    def evict_pods_of(deleted_cluster: str, profile: str) -> None:
        if deleted_cluster == cluster:
            emulator.controllers.evict(FARGATE_PROFILE_KEY, profile)

    emulator.api.faults = injected_fault
    services.profiles.on_delete = evict_pods_of
    emulator.start()
    services.profiles.set_cluster_endpoint(cluster, emulator.endpoint, emulator.ca_data)
    assert base64.b64decode(emulator.ca_data).startswith(b"-----BEGIN CERTIFICATE-----")
    return emulator


def stop_cluster(services: ClusterServices, emulator: KubeEmulator) -> None:
    """Stop the emulator; deleted profiles no longer evict its pods."""
    services.profiles.on_delete = None
    emulator.stop()
