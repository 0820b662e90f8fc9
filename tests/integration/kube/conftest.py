"""Fixtures of the Kubernetes integration tests: the emulator, started and always stopped, and test credentials.

Only DescribeCluster is replaced (by a ClusterEndpoint source returning the emulator's endpoint and CA); the token is
presigned by the real botocore code with test credentials, and the emulator checks it like EKS, recomputing the SigV4 signature
with its own cluster name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_helpers import ACCESS_KEY, CLUSTER, REGION, SECRET_KEY, eks_authenticator, make_settings

from fargate_app.config import Settings
from fargate_app.kube.auth import reset_sts_clients
from kube_emulator import KubeEmulator, Scheduler


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Known credentials, so the emulator can verify the SigV4 signature of the EKS token."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    reset_sts_clients()  # a cached client keeps the credentials it resolved first
    # Presigning is local: no AWS endpoint is called (mock_aws would swap in its own keys, breaking the signature).
    yield


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., KubeEmulator]]:
    """A factory: every emulator it starts is stopped at the end of the test, whatever happens."""
    started: list[KubeEmulator] = []

    def start(scheduler: Scheduler | None = None, cluster: str = CLUSTER, **kwargs: Any) -> KubeEmulator:
        kwargs.setdefault("authenticator", eks_authenticator(cluster))
        emulator = KubeEmulator(cluster=cluster, scheduler=scheduler, **kwargs).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def settings() -> Settings:
    return make_settings()
