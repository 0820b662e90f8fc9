"""One Kubernetes client per cluster (fargate_app/kube/client.py KubeApiCache): built once, its token refreshed in
time, trusting only the cluster's CA."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fargate_app.kube.auth import EksToken
from fargate_app.kube.client import ClusterEndpoint, KubeApiCache
from kube_emulator.tls import generate

CA_PEM = generate().ca_pem.decode()


@dataclass
class Calls:
    """The cache's collaborators, recorded: DescribeCluster, the token signer, and a clock the test moves."""

    now: float = 1_000.0
    described: list[str] = field(default_factory=list)
    signed: list[tuple[str, str]] = field(default_factory=list)

    def source(self, cluster: str) -> ClusterEndpoint:
        self.described.append(cluster)
        return ClusterEndpoint(name=cluster, endpoint=f"https://{cluster}.example:443", ca_pem=CA_PEM, version="1.33")

    def token(self, cluster: str, region: str) -> EksToken:
        self.signed.append((cluster, region))
        return EksToken(value=f"k8s-aws-v1.token-{len(self.signed)}")

    def cache(self, refresh_after: float = 600) -> KubeApiCache:
        return KubeApiCache(self.source, self.token, refresh_after=refresh_after, clock=lambda: self.now)


def test_a_clusters_client_is_built_once_and_kept_while_its_token_is_fresh() -> None:
    calls = Calls()
    cache = calls.cache()
    first = cache.get("blog", "us-west-2")
    calls.now += 599
    assert cache.get("blog", "us-west-2") is first
    assert (calls.described, calls.signed) == (["blog"], [("blog", "us-west-2")])


def test_a_token_as_old_as_the_refresh_age_is_signed_again_for_the_same_endpoint() -> None:
    calls = Calls()
    cache = calls.cache()
    first = cache.get("blog", "us-west-2")
    calls.now += 600
    second = cache.get("blog", "us-west-2")
    assert second is not first
    assert second.api_client.configuration.api_key["authorization"] == "Bearer k8s-aws-v1.token-2"
    assert calls.described == ["blog"]  # the endpoint and CA do not change while the cluster exists


def test_each_cluster_has_its_own_client_and_forgetting_one_keeps_the_other() -> None:
    calls = Calls()
    cache = calls.cache()
    blog, shop = cache.get("blog", "us-west-2"), cache.get("shop", "eu-west-1")
    assert blog.cluster.name == "blog" and shop.cluster.name == "shop"
    assert calls.signed == [("blog", "us-west-2"), ("shop", "eu-west-1")]
    cache.forget("blog")
    assert cache.get("shop", "eu-west-1") is shop
    assert cache.get("blog", "us-west-2") is not blog
    assert calls.described == ["blog", "shop", "blog"]
    cache.forget()
    cache.get("shop", "eu-west-1")
    assert calls.described == ["blog", "shop", "blog", "shop"]


def test_forgetting_a_cluster_never_cached_is_no_error_and_keeps_the_others() -> None:
    calls = Calls()
    cache = calls.cache()
    blog = cache.get("blog", "us-west-2")
    cache.forget("shop")  # e.g. a teardown of an app on a cluster this container never reached
    assert cache.get("blog", "us-west-2") is blog


def test_the_client_verifies_the_server_against_the_clusters_ca_and_never_logs_headers() -> None:
    api = Calls().cache().get("blog", "us-west-2")
    configuration = api.api_client.configuration
    assert configuration.host == "https://blog.example:443"
    assert (configuration.verify_ssl, configuration.ca_cert_data, configuration.debug) == (True, CA_PEM, False)
    assert configuration.api_key == {"authorization": "Bearer k8s-aws-v1.token-1"}


@pytest.mark.parametrize("api_group", ["core", "apps", "networking"])
def test_every_api_group_shares_the_one_authenticated_client(api_group: str) -> None:
    api = Calls().cache().get("blog", "us-west-2")
    assert getattr(api, api_group).api_client is api.api_client
