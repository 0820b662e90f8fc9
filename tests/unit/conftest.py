"""Fixtures of the unit tests: moto's EC2/EKS shaped like the sandbox's seeded cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from api_support import ACCOUNT, PASS_ASL
from unit_support import Network, create_cluster

from fargate_app.aws.clients import client
from fargate_app.config import reset_settings


@pytest.fixture
def network() -> Network:
    """The sandbox's VPC: two private subnets (main route table, no internet gateway) and one public subnet."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    private = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-west-2{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.100.0/24", AvailabilityZone="us-west-2a")["Subnet"][
        "SubnetId"
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    return Network(vpc, private, public)


@pytest.fixture
def cluster(network: Network) -> str:
    create_cluster("blog", [*network.private, network.public], network.vpc)
    return "blog"


@pytest.fixture
def machines(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The provision and teardown state machines (a Pass state each: moto does not run them here)."""
    sfn = client("stepfunctions")
    arns = {
        kind: sfn.create_state_machine(
            name=f"fargate-app-{kind}", definition=PASS_ASL, roleArn=f"arn:aws:iam::{ACCOUNT}:role/states-{kind}"
        )["stateMachineArn"]
        for kind in ("provision", "teardown")
    }
    monkeypatch.setenv("PROVISION_STATE_MACHINE_ARN", arns["provision"])
    monkeypatch.setenv("TEARDOWN_STATE_MACHINE_ARN", arns["teardown"])
    reset_settings()
    yield arns
    reset_settings()


@pytest.fixture
def call(handler: Callable[[str], Any], lambda_context: Any) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    api = handler("api")

    def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = api.lambda_handler(event, lambda_context)
        assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
        return response["statusCode"], json.loads(response["body"])

    return invoke
