"""Shared values and builders of the Kubernetes integration tests (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fargate_app.config import Settings
from fargate_app.kube.client import ClusterEndpoint, KubeApiCache
from fargate_app.models import RequestEvent
from kube_emulator import (
    EksTokenAuthenticator,
    FargateLikeScheduler,
    KubeEmulator,
    Scheduler,
    SignatureVerifier,
    static_profiles,
)

REGION = "us-west-2"
ACCOUNT = "111122223333"
CLUSTER = "blog"
ACCESS_KEY, SECRET_KEY = "AKIAKUBEEMULATORTEST", "kube-emulator-test-secret"
CALLER_ARN = f"arn:aws:iam::{ACCOUNT}:role/fargate-app-provisioner-ApplyApp"
DIGEST = "sha256:" + "ab" * 32
CACHED_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/ecr-public/nginx/nginx@{DIGEST}"
EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:provision:demo-app-1"


def eks_authenticator(cluster: str = CLUSTER) -> EksTokenAuthenticator:
    verifier = SignatureVerifier(
        secret_for=lambda key: SECRET_KEY if key == ACCESS_KEY else None, arn_for=lambda key: CALLER_ARN
    )
    return EksTokenAuthenticator(cluster, verifier)


def fargate_scheduler(namespace: str = "fargate", image_error: Callable[[str], str | None] | None = None) -> Scheduler:
    """Pods of ``namespace`` match a Fargate profile; ``image_error`` decides whether their image can be pulled."""
    pull = image_error or (lambda image: None)
    return FargateLikeScheduler(REGION, static_profiles([{"namespace": namespace}]), lambda image, pod: pull(image))


def endpoint_of(emulator: KubeEmulator, cluster_name: str = CLUSTER) -> ClusterEndpoint:
    """What DescribeCluster gives for the emulator: its endpoint, its CA and its Kubernetes version."""
    return ClusterEndpoint(
        name=cluster_name, endpoint=emulator.endpoint, ca_pem=emulator.ca_pem, version=emulator.version
    )


def apis_for(emulator: KubeEmulator, cluster_name: str = CLUSTER) -> KubeApiCache:
    """Clients of the emulator built by the production code (token, CA, client); only DescribeCluster is replaced."""
    endpoint = endpoint_of(emulator, cluster_name)
    return KubeApiCache(source=lambda cluster: endpoint)


def request_json(**overrides: Any) -> dict[str, Any]:
    request = {
        "cluster": CLUSTER,
        "app": "demo-app",
        "namespace": "fargate",
        "image": "public.ecr.aws/nginx/nginx:stable",
        "replicas": 1,
        "port": 80,
        "labels": {"tier": "web"},
        "expose": {"ingress": {"scheme": "internet-facing", "path": "/"}},
    }
    request.update(overrides)
    return request


def step_event(**extra: Any) -> dict[str, Any]:
    """The state as the state machine passes it: the request, earlier results, and keys the step ignores."""
    return {
        "request": request_json(),
        "image": {"requested": "public.ecr.aws/nginx/nginx:stable", "cached": CACHED_IMAGE, "digest": DIGEST},
        "executionArn": EXECUTION_ARN,
        "fargateProfile": {"name": "fargate-app-fargate-0", "status": "ACTIVE"},
        "startedAt": datetime.now(UTC).isoformat(),
        **extra,
    }


def parse(model: type[RequestEvent], event: dict[str, Any]) -> Any:
    return model.parse(event, region=REGION, account=ACCOUNT)


def make_settings() -> Settings:
    return Settings.model_validate({"AWS_REGION": REGION, "ACCOUNT_ID": ACCOUNT})
