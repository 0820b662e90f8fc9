"""One sandbox per test session (per xdist worker), on a hand-driven clock, plus a stub upstream registry; the
fixture template's workflows per module (a module that needs other settings defines its own ``workflows``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_template import HOLDERS_TABLE
from sandbox_test_support import PROFILE_SECONDS, STUB_UPSTREAM_URL, StubUpstream

from fargate_app.aws import clients
from fargate_app.config import Settings
from fargate_app.kube.auth import reset_sts_clients
from fargate_sandbox.eks_rules import ManualClock
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "workflows" / "template.yaml"


@pytest.fixture(scope="session")
def stub_upstream() -> Iterator[StubUpstream]:
    stub = StubUpstream()
    stub.server.start("stub-upstream")
    yield stub
    stub.server.stop()


@pytest.fixture(scope="session")
def sandbox_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def sandbox(sandbox_clock: ManualClock, stub_upstream: StubUpstream) -> Iterator[Sandbox]:
    with Sandbox(
        clock=sandbox_clock,
        profile_create_seconds=PROFILE_SECONDS,
        profile_delete_seconds=PROFILE_SECONDS,
        registry_proxies={STUB_UPSTREAM_URL: stub_upstream.server.url},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox) -> Iterator[Workflows]:
    """The fixture template's state machines and functions, waits and retries scaled a thousandfold down."""
    with Workflows(sandbox, FIXTURE_TEMPLATE, time_scale=0.001) as running:
        yield running


@pytest.fixture(autouse=True)
def _disarm_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()


@pytest.fixture
def cluster(sandbox: Sandbox) -> str:
    """A fresh ACTIVE cluster in the seeded VPC, so profile tests never see each other's profiles."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    network = sandbox.seeds.network
    role = "arn:aws:iam::111122223333:role/sandbox-eks-cluster-role"
    subnets = [*network.private_subnets, network.public_subnet]
    sandbox.moto_client("eks").create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    return name


@pytest.fixture
def aws_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """What the Lambda environment gives the functions: region, account, and (sandbox only) the endpoint."""
    for name, value in {
        "AWS_ENDPOINT_URL": sandbox.endpoint_url,
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "AKIASANDBOX000000000",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
    }.items():
        monkeypatch.setenv(name, value)
    clients.reset_clients()
    reset_sts_clients()  # the EKS token's STS client keeps the credentials it was made with
    dynamodb = sandbox.boto3_client("dynamodb")
    # the stack's holders table (the ensure steps take what they use; compensation releases it)
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(**HOLDERS_TABLE)
    yield Settings.model_validate(
        {"AWS_REGION": "us-west-2", "ACCOUNT_ID": "111122223333", "HOLDERS_TABLE_NAME": HOLDERS_TABLE["TableName"]}
    )
    clients.reset_clients()
    reset_sts_clients()
