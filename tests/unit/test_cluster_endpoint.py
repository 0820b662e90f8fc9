"""How the steps find a cluster's Kubernetes API: DescribeCluster's endpoint, CA and version, from moto's EKS
shaped as EKS answers (the CA is base64 PEM); a cluster without them yet is not ACTIVE for our purpose."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from moto.eks.models import eks_backends

from fargate_app.errors import ClusterNotActive, ClusterNotFound
from fargate_app.kube.client import eks_cluster_endpoint

pytestmark = pytest.mark.usefixtures("aws")

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n"
ENDPOINT = "https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"


def describe_as(cluster: str, **attributes: Any) -> None:
    moto_cluster = eks_backends["111122223333"]["us-west-2"].clusters[cluster]
    for key, value in attributes.items():
        setattr(moto_cluster, key, value)


def test_the_endpoint_ca_and_version_are_read(cluster: str) -> None:
    describe_as(cluster, endpoint=ENDPOINT, certificate_authority={"data": base64.b64encode(PEM.encode()).decode()})

    found = eks_cluster_endpoint(cluster)

    assert (found.name, found.endpoint, found.ca_pem, found.version) == ("blog", ENDPOINT, PEM, "1.33")


@pytest.mark.parametrize(
    "attributes",
    [{"endpoint": ""}, {"endpoint": None}, {"certificate_authority": {}}, {"certificate_authority": {"data": ""}}],
)
def test_a_cluster_without_endpoint_or_ca_yet_is_not_active(cluster: str, attributes: dict[str, Any]) -> None:
    describe_as(cluster, **{"certificate_authority": {"data": base64.b64encode(PEM.encode()).decode()}, **attributes})

    with pytest.raises(ClusterNotActive) as refused:
        eks_cluster_endpoint(cluster)

    assert str(refused.value) == "EKS cluster blog has no API endpoint or CA yet; retry once it is ACTIVE"


# the PEM's base64 with a character outside the alphabet: a lenient decoder would drop it and read the PEM
_WITH_A_STRAY = base64.b64encode(PEM.encode()).decode()[:8] + "!" + base64.b64encode(PEM.encode()).decode()[8:]


@pytest.mark.parametrize("data", ["not base64!", base64.b64encode(b"\xff\xfe certificate").decode(), _WITH_A_STRAY])
def test_a_ca_that_is_not_base64_pem_is_named(cluster: str, data: str) -> None:
    describe_as(cluster, certificate_authority={"data": data})

    with pytest.raises(ClusterNotActive) as refused:
        eks_cluster_endpoint(cluster)

    assert str(refused.value) == "EKS cluster blog: certificateAuthority.data is not base64 PEM"


def test_a_missing_cluster_is_named(network: Any) -> None:
    with pytest.raises(ClusterNotFound, match="EKS cluster blog does not exist"):
        eks_cluster_endpoint("blog")


def test_a_cluster_that_reports_no_version_has_an_empty_one(cluster: str) -> None:
    describe_as(
        cluster,
        endpoint=ENDPOINT,
        certificate_authority={"data": base64.b64encode(PEM.encode()).decode()},
        version=None,
    )
    assert eks_cluster_endpoint(cluster).version == ""
