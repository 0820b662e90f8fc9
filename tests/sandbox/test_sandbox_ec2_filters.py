"""EC2's Describe filters through plain boto3: a name EC2 does not list is refused, as EC2 refuses it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from fargate_sandbox.sandbox import Sandbox


@pytest.mark.parametrize("name", ["VPC-ID", "vpc_id", "vpcId", "route-table"])
def test_a_filter_name_ec2_does_not_list_is_invalid(sandbox: Sandbox, name: str) -> None:
    # Given the seeded VPC
    ec2 = sandbox.boto3_client("ec2")
    vpc = sandbox.seeds.network.vpc_id
    # When its route tables are described with a filter name EC2's API reference does not list (case included)
    with pytest.raises(ClientError) as raised:
        ec2.describe_route_tables(Filters=[{"Name": name, "Values": [vpc]}])
    # Then EC2's answer names it
    assert raised.value.response["Error"] == {
        "Code": "InvalidParameterValue",
        "Message": f"The filter '{name}' is invalid",
    }


def test_the_first_unknown_filter_is_named_after_listed_ones(sandbox: Sandbox) -> None:
    # Given a listed filter before an unknown one
    ec2 = sandbox.boto3_client("ec2")
    filters = [{"Name": "vpc-id", "Values": ["vpc-1"]}, {"Name": "Subnet-Id", "Values": ["subnet-1"]}]
    # When subnets are described with both
    with pytest.raises(ClientError) as raised:
        ec2.describe_subnets(Filters=filters)
    # Then the unknown one is named
    assert raised.value.response["Error"]["Message"] == "The filter 'Subnet-Id' is invalid"


def test_listed_filter_names_and_tag_keys_are_answered(sandbox: Sandbox) -> None:
    # Given the seeded VPC and its subnets
    ec2 = sandbox.boto3_client("ec2")
    network = sandbox.seeds.network
    # When it is described with listed names, a tag:<key> and tag-key
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])["RouteTables"]
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [network.vpc_id]},
            {"Name": "subnet-id", "Values": list(network.private_subnets)},
        ]
    )["Subnets"]
    tagged = ec2.describe_subnets(Filters=[{"Name": "tag:nothing-has-this", "Values": ["x"]}])["Subnets"]
    keyed = ec2.describe_route_tables(Filters=[{"Name": "tag-key", "Values": ["nothing-has-this"]}])["RouteTables"]
    # Then moto answers them, filtered
    assert tables and all(table["VpcId"] == network.vpc_id for table in tables)
    assert sorted(s["SubnetId"] for s in subnets) == sorted(network.private_subnets)
    assert tagged == [] and keyed == []
