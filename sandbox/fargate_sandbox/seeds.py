"""The sandbox's pinned seeds (docs/design.md §6): cluster ``blog`` in a VPC with two private subnets and one public
subnet, and the upstream credential secrets. Seeding is find-or-create: moto's state is per process, so a second
sandbox in the same process finds the first one's seeds instead of failing on duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fargate_sandbox.moto_backend import MotoBackend

ACCOUNT_ID = "111122223333"
REGION = "us-west-2"
CLUSTER_NAME = "blog"
KUBERNETES_VERSION = "1.31"
SEED_TAG = {"Key": "fargate-sandbox", "Value": "seed"}
# Fixed credentials of the seeded credentialed upstreams: the secrets hold them and the upstream registries
# (registry_procs) accept only them; ValidatePullThroughCacheRule compares against this table.
UPSTREAM_CREDENTIALS: dict[str, dict[str, str]] = {
    "registry-1.docker.io": {"username": "sandbox-docker-hub", "accessToken": "dckr_pat_sandbox0000000000000000"},
    "ghcr.io": {"username": "sandbox-github", "accessToken": "ghp_sandbox000000000000000000000000000000"},
    # a Chainguard pull token: its identity ID and its password (chainguard-dev/edu, "ECR pull through cache")
    "cgr.dev": {"username": "sandbox0000000000000000/0000000000000000", "accessToken": "cgr-sandbox-pull-token"},
}
SEEDED_SECRETS = {
    "ecr-pullthroughcache/docker-hub": "registry-1.docker.io",
    "ecr-pullthroughcache/github": "ghcr.io",
    "ecr-pullthroughcache/chainguard": "cgr.dev",
}
# Another private ECR registry of the account (another region): an ECR-to-ECR pull-through-cache upstream.
ECR_UPSTREAM = f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com"


@dataclass(frozen=True)
class SeededNetwork:
    vpc_id: str
    private_subnets: tuple[str, str]
    public_subnet: str


@dataclass(frozen=True)
class Seeds:
    network: SeededNetwork
    cluster_name: str
    secret_arns: dict[str, str]  # secret name → ARN


def seed(moto: MotoBackend) -> Seeds:
    network = _network(moto.client("ec2"))
    _cluster(moto, network)
    return Seeds(network=network, cluster_name=CLUSTER_NAME, secret_arns=_secrets(moto.client("secretsmanager")))


def _network(ec2: Any) -> SeededNetwork:
    tagged = {"Name": f"tag:{SEED_TAG['Key']}", "Values": [SEED_TAG["Value"]]}
    vpcs = ec2.describe_vpcs(Filters=[tagged])["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, tagged])["Subnets"]
        by_role = {_tag(s, "role"): s["SubnetId"] for s in subnets}
        return SeededNetwork(vpc_id, (by_role["private-a"], by_role["private-b"]), by_role["public"])
    tags = [{"ResourceType": kind, "Tags": [SEED_TAG]} for kind in ("vpc",)]
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tags)["Vpc"]["VpcId"]

    def subnet(cidr: str, zone: str, role: str) -> str:
        spec = [{"ResourceType": "subnet", "Tags": [SEED_TAG, {"Key": "role", "Value": role}]}]
        return str(
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone, TagSpecifications=spec)["Subnet"][
                "SubnetId"
            ]
        )

    private_a = subnet("10.0.1.0/24", "us-west-2a", "private-a")
    private_b = subnet("10.0.2.0/24", "us-west-2b", "private-b")
    public = subnet("10.0.101.0/24", "us-west-2a", "public")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
    # Private subnets get their own table without an internet route (a NAT gateway would sit here in AWS).
    private_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    for private in (private_a, private_b):
        ec2.associate_route_table(RouteTableId=private_table, SubnetId=private)
    return SeededNetwork(vpc_id, (private_a, private_b), public)


def _tag(resource: dict[str, Any], key: str) -> str:
    return next((tag["Value"] for tag in resource.get("Tags", []) if tag["Key"] == key), "")


def _cluster(moto: MotoBackend, network: SeededNetwork) -> None:
    eks = moto.client("eks")
    if CLUSTER_NAME in eks.list_clusters()["clusters"]:
        return
    iam = moto.client("iam")
    role_name = "sandbox-eks-cluster-role"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    try:
        role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    eks.create_cluster(
        name=CLUSTER_NAME,
        version=KUBERNETES_VERSION,
        roleArn=role_arn,
        resourcesVpcConfig={"subnetIds": [*network.private_subnets, network.public_subnet]},
    )


def _secrets(sm: Any) -> dict[str, str]:
    arns = {}
    for name, upstream in SEEDED_SECRETS.items():
        try:
            arns[name] = sm.describe_secret(SecretId=name)["ARN"]
        except sm.exceptions.ResourceNotFoundException:
            arns[name] = sm.create_secret(Name=name, SecretString=json.dumps(UPSTREAM_CREDENTIALS[upstream]))["ARN"]
    return arns
