"""Fargate profiles behave like EKS: CREATING → ACTIVE, DELETING → gone, one in flight per cluster, private subnets."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError
from sandbox_test_support import PROFILE_SECONDS, profile_args

from fargate_sandbox.aws_protocol import AwsRequest
from fargate_sandbox.eks_rules import FargateProfileRules, Forward, ManualClock, Response
from fargate_sandbox.sandbox import Sandbox


def _status(eks: object, cluster: str, name: str) -> str:
    return eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]["status"]  # type: ignore[attr-defined]


def test_profile_is_creating_for_the_delay_then_active(
    sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str
) -> None:
    # Given the EKS API of the sandbox
    eks = sandbox.boto3_client("eks")
    # When a profile is created
    created = eks.create_fargate_profile(**profile_args(sandbox, cluster, "web"))["fargateProfile"]
    # Then it is CREATING until the delay has passed, then ACTIVE
    assert created["status"] == "CREATING"
    sandbox_clock.advance(PROFILE_SECONDS - 0.5)
    assert _status(eks, cluster, "web") == "CREATING"
    sandbox_clock.advance(1)
    assert _status(eks, cluster, "web") == "ACTIVE"
    assert [p["status"] for p in sandbox.fargate_profiles(cluster)] == ["ACTIVE"]


def test_second_profile_while_one_is_creating_gets_eks_error_text(sandbox: Sandbox, cluster: str) -> None:
    # Given a profile that is still CREATING
    eks = sandbox.boto3_client("eks")
    eks.create_fargate_profile(**profile_args(sandbox, cluster, "first"))
    # When another profile is created on the same cluster
    with pytest.raises(ClientError) as raised:
        eks.create_fargate_profile(**profile_args(sandbox, cluster, "second", selectors=[{"namespace": "other"}]))
    # Then EKS's ResourceInUseException and message come back, and nothing was created
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert error["Code"] == "ResourceInUseException"
    assert error["Message"] == (
        f"Cannot create Fargate Profile second because cluster {cluster} currently has Fargate profile first in status CREATING"
    )
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == ["first"]


def test_delete_is_deleting_then_gone_and_blocks_other_deletes(
    sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str
) -> None:
    # Given two ACTIVE profiles
    eks = sandbox.boto3_client("eks")
    eks.create_fargate_profile(**profile_args(sandbox, cluster, "one"))
    sandbox_clock.advance(PROFILE_SECONDS)
    eks.create_fargate_profile(**profile_args(sandbox, cluster, "two", selectors=[{"namespace": "two"}]))
    sandbox_clock.advance(PROFILE_SECONDS)
    # When one is deleted
    deleting = eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="one")["fargateProfile"]
    # Then it is DELETING, the other cannot be deleted meanwhile, and it is gone after the delay
    assert deleting["status"] == "DELETING"
    with pytest.raises(ClientError) as raised:
        eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="two")
    assert raised.value.response["Error"]["Message"] == (
        f"Cannot Delete Fargate Profile two because cluster {cluster} currently has Fargate profile one in status DELETING"
    )
    sandbox_clock.advance(PROFILE_SECONDS)
    with pytest.raises(ClientError) as gone:
        eks.describe_fargate_profile(clusterName=cluster, fargateProfileName="one")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == ["two"]


def _clock_passes_after(monkeypatch: pytest.MonkeyPatch, reads: int, seconds: float, operation: str = "") -> None:
    """The sandbox's clock moves ``seconds`` on right after the ``reads``-th reading (a loaded machine) by this thread,
    or with ``operation``, by the thread of the AWS front that serves that EKS call."""
    read = ManualClock.__call__
    reader = [None if operation else threading.get_ident()]
    left = [reads]

    def passing(clock: ManualClock) -> float:
        now = read(clock)
        if reader[0] == threading.get_ident() and left[0] > 0:
            left[0] -= 1
            if left[0] == 0:
                clock.advance(seconds)
        return now

    monkeypatch.setattr(ManualClock, "__call__", passing)
    if operation:
        handle = FargateProfileRules.handle

        def serving(rules: FargateProfileRules, request: AwsRequest, forward: Forward) -> Response:
            if request.operation == operation:
                reader[0] = threading.get_ident()
            return handle(rules, request, forward)

        monkeypatch.setattr(FargateProfileRules, "handle", serving)


def _deleting(sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str, name: str) -> None:
    eks = sandbox.boto3_client("eks")
    eks.create_fargate_profile(**profile_args(sandbox, cluster, name))
    sandbox_clock.advance(PROFILE_SECONDS)
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName=name)


def test_a_deletion_completing_while_profiles_are_listed_lists_it_with_a_status(
    sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a profile being deleted, and a clock that passes the end of its deletion right after the listing's first
    # reading
    _deleting(sandbox, sandbox_clock, cluster, "leaving")
    _clock_passes_after(monkeypatch, reads=1, seconds=PROFILE_SECONDS)
    # When the cluster's profiles are listed
    listed = sandbox.fargate_profiles(cluster)
    # Then the profile is DELETING as of the listing's moment, never listed without a status
    monkeypatch.undo()
    assert [(p["fargateProfileName"], p["status"]) for p in listed] == [("leaving", "DELETING")]
    assert sandbox.fargate_profiles(cluster) == []


def test_a_delete_racing_the_end_of_a_deletion_never_starts_it_again(
    sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a profile being deleted, and a clock that passes the end of its deletion during a second delete call
    _deleting(sandbox, sandbox_clock, cluster, "leaving")
    _clock_passes_after(monkeypatch, reads=2, seconds=PROFILE_SECONDS, operation="DeleteFargateProfile")
    # When it is deleted again
    eks = sandbox.boto3_client("eks")
    with pytest.raises(ClientError) as raised:
        eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="leaving")
    monkeypatch.undo()
    # Then the call is judged at one moment (before, its second reading came after the end of the deletion, and the
    # call started deleting a profile already gone): the profile is still DELETING, EKS's answer for a profile in
    # progress, and its deletion ends as it was due
    assert raised.value.response["Error"]["Code"] == "ResourceInUseException"
    sandbox_clock.advance(PROFILE_SECONDS)
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == []


def test_six_selectors_are_rejected(sandbox: Sandbox, cluster: str) -> None:
    # Given six selectors, one more than EKS allows
    selectors = [{"namespace": f"ns{i}"} for i in range(6)]
    # When the profile is created
    with pytest.raises(ClientError) as raised:
        sandbox.boto3_client("eks").create_fargate_profile(
            **profile_args(sandbox, cluster, "many", selectors=selectors)
        )
    # Then EKS rejects the parameter
    assert raised.value.response["Error"]["Code"] == "InvalidParameterException"
    assert raised.value.response["Error"]["Message"] == "Request contains more than 5 Selectors"


def test_public_subnet_is_rejected(sandbox: Sandbox, cluster: str) -> None:
    # Given the seeded public subnet (its route table routes 0.0.0.0/0 to an internet gateway)
    public = sandbox.seeds.network.public_subnet
    # When a profile names it
    with pytest.raises(ClientError) as raised:
        sandbox.boto3_client("eks").create_fargate_profile(**profile_args(sandbox, cluster, "pub", subnets=[public]))
    # Then EKS's error names the subnet
    assert raised.value.response["Error"]["Code"] == "InvalidParameterException"
    assert (
        raised.value.response["Error"]["Message"]
        == f"Subnet {public} provided in Fargate Profile is not a private subnet"
    )


def test_same_client_request_token_replays_the_first_answer(sandbox: Sandbox, cluster: str) -> None:
    # Given a profile created with a client request token
    eks = sandbox.boto3_client("eks")
    args = profile_args(sandbox, cluster, "idem", clientRequestToken="token-1")
    first = eks.create_fargate_profile(**args)["fargateProfile"]
    # When the same request is retried (as the SDK does after a lost answer)
    again = eks.create_fargate_profile(**args)["fargateProfile"]
    # Then the same profile is returned instead of an error
    assert again["fargateProfileArn"] == first["fargateProfileArn"]
    assert again["status"] == "CREATING"


def test_describe_cluster_reports_the_seeded_vpc(sandbox: Sandbox) -> None:
    # When the seeded cluster is described
    described = sandbox.boto3_client("eks").describe_cluster(name="blog")["cluster"]
    # Then it is ACTIVE in the seeded VPC with its three subnets
    network = sandbox.seeds.network
    assert described["status"] == "ACTIVE"
    assert described["resourcesVpcConfig"]["vpcId"] == network.vpc_id
    assert set(described["resourcesVpcConfig"]["subnetIds"]) == {*network.private_subnets, network.public_subnet}


def test_profile_calls_on_a_missing_cluster_are_404_as_in_eks(sandbox: Sandbox) -> None:
    eks = sandbox.boto3_client("eks")
    with pytest.raises(eks.exceptions.ResourceNotFoundException, match="No cluster found for name: nowhere."):
        eks.list_fargate_profiles(clusterName="nowhere")


def test_a_token_replay_after_the_profile_vanished_behind_the_api_creates_it_again(
    sandbox: Sandbox, sandbox_clock: ManualClock, cluster: str
) -> None:
    # Given a profile created with an idempotency token, then removed from the backend without the EKS API (as a test
    # that cleans moto directly does)
    eks = sandbox.boto3_client("eks")
    args = profile_args(sandbox, cluster, "vanished", clientRequestToken="token-1")
    eks.create_fargate_profile(**args)
    sandbox.moto_client("eks").delete_fargate_profile(clusterName=cluster, fargateProfileName="vanished")
    # When the same request (same token) is sent again
    created = eks.create_fargate_profile(**args)["fargateProfile"]
    # Then it is a new create answered as EKS answers one (it used to drop the connection: nothing to replay)
    assert created["status"] == "CREATING"
    assert _status(eks, cluster, "vanished") == "CREATING"
