"""The Kubernetes API client of an EKS cluster, built from ``DescribeCluster`` and an IAM-derived bearer token.

No kubeconfig file and no external binary: the endpoint and the CA come from ``DescribeCluster``
(``endpoint``, ``certificateAuthority.data``), the token from :mod:`fargate_app.kube.auth`. A client is cached per
cluster for the life of the Lambda container and rebuilt with a fresh token before EKS stops accepting the old one.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fargate_app.aws.eks import describe_active_cluster
from fargate_app.errors import ClusterNotActive
from fargate_app.kube.auth import EksToken, eks_token

# EKS accepts a token for 15 minutes; a fresh one after 10 leaves room for clock skew and long steps.
TOKEN_REFRESH_SECONDS = 10 * 60
# (connect, read) seconds for every API call: a step must fail fast and let the state machine retry.
REQUEST_TIMEOUT = (5, 20)


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where a cluster's API server is and how to trust it."""

    name: str
    endpoint: str
    ca_pem: str = field(repr=False)
    version: str


ClusterEndpointSource = Callable[[str], ClusterEndpoint]
TokenSource = Callable[[str, str], EksToken]


def eks_cluster_endpoint(cluster: str) -> ClusterEndpoint:
    """``DescribeCluster`` → endpoint, CA (base64 PEM in ``certificateAuthority.data``) and Kubernetes version.

    Raises:
        ClusterNotFound, ClusterNotActive, AwsThrottled: from ``DescribeCluster``.
    """
    description = describe_active_cluster(cluster)
    endpoint = description.get("endpoint")
    ca_data = (description.get("certificateAuthority") or {}).get("data")
    if not endpoint or not ca_data:
        raise ClusterNotActive(f"EKS cluster {cluster} has no API endpoint or CA yet; retry once it is ACTIVE")
    try:
        ca_pem = base64.b64decode(ca_data, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ClusterNotActive(f"EKS cluster {cluster}: certificateAuthority.data is not base64 PEM") from exc
    return ClusterEndpoint(name=cluster, endpoint=endpoint, ca_pem=ca_pem, version=str(description.get("version", "")))


@dataclass
class KubeApi:
    """The typed API groups the steps use, sharing one authenticated connection pool."""

    cluster: ClusterEndpoint
    api_client: Any
    token_created: float

    @property
    def core(self) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        from kubernetes.client import AppsV1Api

        return AppsV1Api(self.api_client)

    @property
    def networking(self) -> Any:
        from kubernetes.client import NetworkingV1Api

        return NetworkingV1Api(self.api_client)


def build_api_client(cluster: ClusterEndpoint, token: EksToken) -> Any:
    """A ``kubernetes.client.ApiClient`` for the endpoint, trusting only the cluster's CA."""
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration(
        host=cluster.endpoint,
        api_key={"authorization": f"Bearer {token.value}"},
        ca_cert_data=cluster.ca_pem,
        verify_ssl=True,
    )
    # Never echo request headers (the token) in debug logs, whatever the log level.
    configuration.debug = False
    return ApiClient(configuration)


class KubeApiCache:
    """One :class:`KubeApi` per cluster, rebuilt when its token is older than ``refresh_after`` seconds."""

    def __init__(
        self,
        source: ClusterEndpointSource = eks_cluster_endpoint,
        token_source: TokenSource = eks_token,
        refresh_after: float = TOKEN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._token_source = token_source
        self._refresh_after = refresh_after
        self._clock = clock
        self._endpoints: dict[str, ClusterEndpoint] = {}
        self._apis: dict[str, KubeApi] = {}
        self._lock = threading.Lock()

    def get(self, cluster: str, region: str) -> KubeApi:
        """The API of ``cluster``, authenticated with a token that EKS still accepts.

        Raises:
            ClusterNotFound, ClusterNotActive, AwsThrottled: describing the cluster or signing the token failed.
        """
        with self._lock:
            api = self._apis.get(cluster)
            if api is not None and self._clock() - api.token_created < self._refresh_after:
                return api
            endpoint = self._endpoints.get(cluster)
            if endpoint is None:
                # The endpoint and CA of a cluster do not change while it exists: describe it once per container.
                endpoint = self._endpoints[cluster] = self._source(cluster)
            token = self._token_source(cluster, region)
            api = KubeApi(cluster=endpoint, api_client=build_api_client(endpoint, token), token_created=self._clock())
            self._apis[cluster] = api
            return api

    def forget(self, cluster: str | None = None) -> None:
        """Drop cached clients (all, or one cluster's), e.g. after the cluster was recreated."""
        with self._lock:
            for cache in (self._apis, self._endpoints):
                if cluster is None:
                    cache.clear()
                else:
                    cache.pop(cluster, None)


DEFAULT_APIS = KubeApiCache()
