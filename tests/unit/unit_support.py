"""Shared pieces of the unit tests' AWS fixtures (the fixtures themselves are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.eks.models import eks_backends
from project_template import HOLDERS_TABLE_NAME

ROLE = "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog"


@dataclass
class Network:
    vpc: str
    private: list[str]
    public: str


def create_cluster(
    name: str, subnets: list[str], vpc: str, role: str = "arn:aws:iam::111122223333:role/eks", version: str = "1.33"
) -> None:
    """CreateCluster in moto, completed as EKS's DescribeCluster answers: ``resourcesVpcConfig.vpcId`` is always
    there (EKS API reference, VpcConfigResponse) and moto leaves it out. The version is one EKS supports today
    (moto's default, 1.19, is older than the app's objects need)."""
    eks = boto3.client("eks")
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": subnets}, version=version)
    account = boto3.client("sts").get_caller_identity()["Account"]
    eks_backends[account][eks.meta.region_name].clusters[name].resources_vpc_config["vpcId"] = vpc


def fill_cluster(network: Network, count: int) -> None:
    """``count`` Fargate profiles someone else made on cluster blog, one namespace each (``theirs-<n>``), none of which
    schedules the walkthrough's app."""
    for index in range(count):
        boto3.client("eks").create_fargate_profile(
            fargateProfileName=f"theirs-{index}",
            clusterName="blog",
            podExecutionRoleArn=ROLE,
            subnets=network.private,
            selectors=[{"namespace": f"theirs-{index}"}],
        )


def holders_of(resource: str) -> list[str]:
    """Who holds a shared resource in moto's holders table (``podExecutionRole/<name>``, ``cacheRule/<prefix>``…)."""
    item = boto3.client("dynamodb").get_item(TableName=HOLDERS_TABLE_NAME, Key={"resource": {"S": resource}})
    return sorted(item.get("Item", {}).get("holders", {}).get("SS", []))


@contextmanager
def stubbed(monkeypatch: pytest.MonkeyPatch, module: str, service: str) -> Iterator[Stubber]:
    """A real boto3 client of ``service`` behind botocore's Stubber, as ``module``'s ``client`` gives it (asking
    that ``client`` for any other service fails): every call is still checked against the service model."""
    real = boto3.client(service, region_name="us-west-2")
    monkeypatch.setattr(f"{module}.client", lambda name: {service: real}[name])
    with Stubber(real) as stubber:
        yield stubber


def fail_with(client: Any, operation: str, code: str, message: str, status: int = 400) -> None:
    """Make one operation of a real (moto-backed) client answer an AWS error, the way botocore would parse it."""

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        http = type("HttpResponse", (), {"status_code": status})()
        return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}

    client.meta.events.register(f"before-call.{client.meta.service_model.service_name}.{operation}", answer)


def clock_stopped_at(moment: datetime) -> type[datetime]:
    """A ``datetime`` class whose ``now()`` is ``moment``, to put in a module's namespace in place of ``datetime``:
    its instances (``fromtimestamp``) pass that module's isinstance checks as the SDK's datetimes do."""

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Stopped:
            return cls.fromtimestamp(moment.timestamp(), tz)

    return Stopped
