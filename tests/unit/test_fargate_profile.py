"""EnsureFargateProfile and CheckFargateProfile against moto's EKS and EC2."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from request_edits import walkthrough_request
from unit_support import ROLE, Network, clock_stopped_at, create_cluster, fail_with, fill_cluster, holders_of, stubbed

from fargate_app import holders
from fargate_app.aws.eks import (
    check_fargate_profile,
    check_subnets,
    delete_fargate_profile,
    ensure_fargate_profile,
    profile_name,
    reusable_profile,
)
from fargate_app.config import Settings
from fargate_app.errors import (
    AccessDenied,
    ClusterNotActive,
    ClusterNotFound,
    IamRoleNotYetPropagated,
    InvalidRequest,
    PermanentError,
    PollTimeout,
    ProfileCreateFailed,
    ProfileNotYetActive,
    ProfileNotYetDeleted,
    ProfileOperationInProgress,
    SharedResourceReleasing,
    SubnetNotPrivate,
)
from fargate_app.holders import release
from fargate_app.models import ProvisionRequest, parse_request
from fargate_app.teardown import ReleaseProfileEvent

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def per_namespace(settings: Settings) -> Settings:
    """A stack whose FargateProfileStrategy is per-namespace."""
    return settings.model_copy(update={"profile_strategy": "per-namespace"})


MANAGED_PODS = {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}


def eks_answers_for_the_step(monkeypatch: pytest.MonkeyPatch, eks: Any) -> None:
    """The step's EKS client is ``eks`` (its other services stay moto's)."""
    monkeypatch.setattr(
        "fargate_app.aws.eks.client", lambda service: eks if service == "eks" else boto3.client(service)
    )


def eks_refusing(monkeypatch: pytest.MonkeyPatch, operation: str, code: str, message: str, status: int = 400) -> Any:
    """The step's EKS client answering ``operation`` with an EKS error (``fail_with``); the client."""
    eks = boto3.client("eks")
    fail_with(eks, operation, code, message, status)
    eks_answers_for_the_step(monkeypatch, eks)
    return eks


def request(**changes: Any) -> ProvisionRequest:
    body = walkthrough_request()
    return parse_request({**body, **changes})


def someone_elses_profile(network: Network, selectors: list[dict[str, Any]]) -> None:
    """Profile ``existing``, created outside the provisioner (no tags) in the cluster's private subnets."""
    boto3.client("eks").create_fargate_profile(
        fargateProfileName="existing",
        clusterName="blog",
        podExecutionRoleArn=ROLE,
        subnets=network.private,
        selectors=selectors,
    )


def test_creates_a_profile_for_the_namespace_in_private_subnets(
    per_namespace: Settings, cluster: str, network: Network
) -> None:
    # When the step runs for an app in a namespace no profile selects
    profile = ensure_fargate_profile(per_namespace, request(), ROLE)
    # Then it creates one selecting the namespace, in the cluster's private subnets only, tagged as ours
    assert profile.created is True
    assert profile.selectors[0].namespace == "fargate" and profile.selectors[0].labels == {}
    assert profile.subnets == sorted(network.private)
    described = boto3.client("eks").describe_fargate_profile(clusterName="blog", fargateProfileName=profile.name)
    assert described["fargateProfile"]["podExecutionRoleArn"] == ROLE
    assert described["fargateProfile"]["tags"] == {
        "managed-by": "fargate-app-provisioner",
        "fargate-app/created-for": "fargate.demo-app",
    }


def test_reuses_the_profile_on_the_next_run(settings: Settings, cluster: str) -> None:
    first = ensure_fargate_profile(settings, request(), ROLE)
    again = ensure_fargate_profile(settings, request(app="other-app"), ROLE)
    assert (first.created, again.created) == (True, False)
    assert again.name == first.name
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == [first.name]


@pytest.mark.parametrize(
    ("selector", "reused"),
    [
        ({"namespace": "fargate"}, True),
        ({"namespace": "farg*"}, True),
        ({"namespace": "f?rgate"}, True),
        ({"namespace": "fargate", "labels": {"tier": "web"}}, True),  # a subset of the pod's labels
        ({"namespace": "fargate", "labels": {"tier": "w*"}}, True),
        ({"namespace": "fargate", "labels": {"app.kubernetes.io/name": "demo-app"}}, True),
        ({"namespace": "fargate", "labels": {"tier": "db"}}, False),
        ({"namespace": "fargate", "labels": {"tier": "web", "zone": "a"}}, False),  # a label the pod lacks
        ({"namespace": "kube-system"}, False),
    ],
)
def test_reuses_any_profile_whose_selector_matches_the_pods(
    settings: Settings, cluster: str, network: Network, selector: dict[str, Any], reused: bool
) -> None:
    # Given a profile made by someone else
    someone_elses_profile(network, [{"namespace": "elsewhere"}, selector])
    # When the app (labels tier=web) is provisioned
    profile = ensure_fargate_profile(settings, request(labels={"tier": "web"}), ROLE)
    # Then that profile is reused exactly when it would schedule the app's pods
    assert (profile.name == "existing") is reused
    assert profile.created is not reused


@pytest.mark.parametrize(("status", "reused"), [("ACTIVE", True), ("CREATING", True), ("DELETING", False)])
def test_a_matching_profile_is_reused_unless_it_is_being_deleted(
    per_namespace: Settings, cluster: str, network: Network, status: str, reused: bool
) -> None:
    # Given someone else's profile that would schedule the app's pods, in the given state
    someone_elses_profile(network, [{"namespace": "fargate"}])
    _set_status("existing", status)
    # When the app is provisioned
    profile = ensure_fargate_profile(per_namespace, request(), ROLE)
    # Then a profile EKS is deleting (its pods go with it) is never reused: the app gets its own
    assert (profile.name == "existing") is reused
    assert profile.created is not reused


def test_missing_cluster_fails_fast(settings: Settings, network: Network) -> None:
    with pytest.raises(ClusterNotFound, match="EKS cluster blog does not exist"):
        ensure_fargate_profile(settings, request(), ROLE)


def test_cluster_not_active_fails_fast(settings: Settings, cluster: str) -> None:
    from moto.eks.models import eks_backends

    eks_backends["111122223333"]["us-west-2"].clusters["blog"].status = "UPDATING"
    with pytest.raises(ClusterNotActive, match="EKS cluster blog is UPDATING"):
        ensure_fargate_profile(settings, request(), ROLE)


def test_public_subnet_in_the_request_is_refused(settings: Settings, cluster: str, network: Network) -> None:
    with pytest.raises(SubnetNotPrivate, match=network.public):
        ensure_fargate_profile(settings, request(subnets=[network.private[0], network.public]), ROLE)
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == []


def test_requested_private_subnets_are_used(settings: Settings, cluster: str, network: Network) -> None:
    profile = ensure_fargate_profile(settings, request(subnets=[network.private[1]]), ROLE)
    assert profile.subnets == [network.private[1]]


def test_cluster_without_private_subnets_is_refused(settings: Settings, network: Network) -> None:
    create_cluster("blog", [network.public], network.vpc)
    with pytest.raises(SubnetNotPrivate, match="no private subnet"):
        ensure_fargate_profile(settings, request(), ROLE)


def test_check_reports_active_and_keeps_what_the_workflow_tracks(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    checked = check_fargate_profile(settings, profile.model_copy(update={"waiting_since": datetime.now(UTC)}))
    assert (checked.status, checked.waiting_since) == ("ACTIVE", None)
    assert (checked.created, checked.selectors, checked.subnets) == (True, profile.selectors, profile.subnets)


def _set_status(name: str, status: str, issues: list[dict[str, Any]] | None = None) -> None:
    from moto.eks.models import eks_backends

    profile = eks_backends["111122223333"]["us-west-2"].clusters["blog"].fargate_profiles[name]
    profile.status = status
    if issues is not None:
        profile.health = {"issues": issues}


def test_a_creating_profile_is_not_yet_active_and_the_clock_starts_when_the_workflow_waits(
    settings: Settings, cluster: str
) -> None:
    # Given a profile EKS is still creating
    created = ensure_fargate_profile(settings, request(), ROLE)
    _set_status(created.name, "CREATING")
    profile = ensure_fargate_profile(settings, request(), ROLE)  # reused: it schedules the app
    assert profile.status == "CREATING" and profile.waiting_since is not None
    assert (datetime.now(UTC) - profile.waiting_since).total_seconds() < 5
    # When it is checked, then "not yet" is the retryable error the state machine's Retry polls with
    with pytest.raises(ProfileNotYetActive, match=rf"{profile.name} of cluster blog is CREATING \(0 s so far\)"):
        check_fargate_profile(settings, profile)
    # and while it is being deleted, the teardown's check says so too
    _set_status(created.name, "DELETING")
    with pytest.raises(ProfileNotYetDeleted, match="is DELETING"):
        check_fargate_profile(settings, profile, expect="DELETED")


def test_check_gives_up_after_the_wait_timeout(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    _set_status(profile.name, "CREATING")
    timeout = settings.profile_wait_timeout_seconds
    just_in_time = profile.model_copy(update={"waiting_since": datetime.now(UTC) - timedelta(seconds=timeout - 30)})
    with pytest.raises(ProfileNotYetActive):
        check_fargate_profile(settings, just_in_time)
    too_long = profile.model_copy(update={"waiting_since": datetime.now(UTC) - timedelta(seconds=timeout + 1)})
    with pytest.raises(PollTimeout, match=rf"still CREATING after {timeout + 1} s \(PROFILE_WAIT_TIMEOUT_SECONDS="):
        check_fargate_profile(settings, too_long)


def test_create_failed_names_the_health_issues(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    _set_status(profile.name, "CREATE_FAILED", [{"code": "PodExecutionRoleAlreadyInUse", "message": "role in use"}])
    with pytest.raises(ProfileCreateFailed, match="PodExecutionRoleAlreadyInUse: role in use"):
        check_fargate_profile(settings, profile)


def test_check_for_deletion_reports_a_gone_profile_as_deleted(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    boto3.client("eks").delete_fargate_profile(clusterName="blog", fargateProfileName=profile.name)
    checked = check_fargate_profile(settings, profile, expect="DELETED")
    assert (checked.status, checked.waiting_since) == ("DELETED", None)


def test_handlers_chain_like_the_state_machine(handler: Any, lambda_context: Any, cluster: str) -> None:
    role = {"arn": ROLE, "name": "FargateAppPodExecution-blog", "created": True}
    body = request().to_json()
    ensured = handler("ensure_fargate_profile").lambda_handler(
        {"request": body, "podExecutionRole": role}, lambda_context
    )
    checked = handler("check_fargate_profile").lambda_handler({"profile": ensured, "expect": "ACTIVE"}, lambda_context)
    assert ensured["created"] is True and ensured["selectors"] == [{"namespace": "*", "labels": MANAGED_PODS}]
    assert ensured["waitingSince"] is None  # moto's profiles are ACTIVE at once
    assert checked == {**ensured, "status": "ACTIVE"}


def test_a_foreign_profile_holding_our_name_is_a_permanent_error(
    per_namespace: Settings, cluster: str, network: Network
) -> None:
    settings = per_namespace
    # Given a profile that has the name we would choose but selects another namespace
    ours = profile_under_our_name(settings, network, {"namespace": "elsewhere"})
    # Then creating it is refused for good, naming the profile (retrying could never help)
    with pytest.raises(ProfileCreateFailed, match=f"{ours} exists \\(ACTIVE\\) and does not schedule app demo-app"):
        ensure_fargate_profile(settings, request(), ROLE)


def test_losing_the_create_race_adopts_the_winners_profile(
    per_namespace: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = per_namespace
    # Given a concurrent execution creates our profile between our listing and our create
    from fargate_app.aws import eks as eks_module

    real_list = eks_module._list_profiles

    def list_then_lose_race(cluster_name: str) -> list[dict[str, Any]]:
        seen = real_list(cluster_name)
        boto3.client("eks").create_fargate_profile(
            fargateProfileName=eks_module.profile_name(settings, request()),
            clusterName="blog",
            podExecutionRoleArn=ROLE,
            subnets=network.private,
            selectors=[{"namespace": "fargate"}],
        )
        return seen

    monkeypatch.setattr(eks_module, "_list_profiles", list_then_lose_race)
    # When this execution creates it, then it adopts the winner's profile and does not claim it
    profile = ensure_fargate_profile(settings, request(), ROLE, execution_id="arn:execution:2")
    assert profile.created is False


def profile_under_our_name(settings: Settings, network: Network, selector: dict[str, Any]) -> str:
    """A profile someone made under the name this stack would give the walkthrough's profile; its name."""
    from fargate_app.aws.eks import profile_name

    ours = profile_name(settings, request())
    boto3.client("eks").create_fargate_profile(
        fargateProfileName=ours,
        clusterName="blog",
        podExecutionRoleArn=ROLE,
        subnets=network.private,
        selectors=[selector],
    )
    return ours


def test_our_profile_name_taken_by_a_profile_being_deleted_waits_to_create_it_anew(
    per_namespace: Settings, cluster: str, network: Network
) -> None:
    # Given a profile under our name that an earlier teardown is deleting (EKS keeps the name until it is gone)
    ours = profile_under_our_name(per_namespace, network, {"namespace": "fargate", "labels": MANAGED_PODS})
    _set_status(ours, "DELETING")
    # When this execution ensures its profile, then it is told to retry (the state's Retry), not to reuse it
    with pytest.raises(ProfileOperationInProgress) as busy:
        ensure_fargate_profile(per_namespace, request(), ROLE)
    assert str(busy.value) == f"cluster blog: profile {ours} is DELETING; will create it anew"


def test_a_profile_under_our_name_with_other_labels_is_not_ours(
    per_namespace: Settings, cluster: str, network: Network
) -> None:
    # Given a profile under our name selecting the namespace but not the managed pods' labels
    profile_under_our_name(per_namespace, network, {"namespace": "fargate", "labels": {"tier": "batch"}})
    with pytest.raises(ProfileCreateFailed, match="delete it or choose other labels"):
        ensure_fargate_profile(per_namespace, request(), ROLE)


@pytest.mark.parametrize(
    ("code", "message", "error", "says"),
    [
        (
            "ResourceInUseException",
            "Cannot create Fargate Profile because cluster blog currently has Fargate profile other in status CREATING",
            ProfileOperationInProgress,
            "cluster blog: Cannot create Fargate Profile because cluster blog currently has Fargate profile other in "
            "status CREATING",
        ),
        (
            "InvalidParameterException",
            "Misconfigured PodExecutionRole Trust Policy; Please add the eks-fargate-pods.amazonaws.com Service Principal",
            IamRoleNotYetPropagated,
            "EKS does not yet see the trust policy of the pod execution role: Misconfigured PodExecutionRole Trust "
            "Policy; Please add the eks-fargate-pods.amazonaws.com Service Principal",
        ),
        (
            "InvalidParameterException",
            "Subnet subnet-0abc1234 provided in Fargate Profile is not a private subnet",
            SubnetNotPrivate,
            "cluster blog: Subnet subnet-0abc1234 provided in Fargate Profile is not a private subnet",
        ),
        (
            "ClientException",
            "Cluster is not reachable",
            PermanentError,
            "create Fargate profile {name} in cluster blog: ClientException: Cluster is not reachable",
        ),
        # Only the error code EKS documents for each case decides, not words in another error's message.
        (
            "ClientException",
            "cluster blog currently has Fargate profile other in status CREATING",
            PermanentError,
            "create Fargate profile {name} in cluster blog: ClientException: cluster blog currently has Fargate "
            "profile other in status CREATING",
        ),
        (
            "ClientException",
            "subnet-0abc1234 is not a private subnet",
            PermanentError,
            "create Fargate profile {name} in cluster blog: ClientException: subnet-0abc1234 is not a private subnet",
        ),
        # Not blamed on private subnets: only EKS's "is not a private subnet" is.
        (
            "InvalidParameterException",
            "The subnet ID 'subnet-0abc1234' does not exist",
            InvalidRequest,
            "EKS refused Fargate profile {name} for cluster blog: The subnet ID 'subnet-0abc1234' does not exist",
        ),
    ],
)
def test_each_refusal_of_the_create_reads_as_its_error(
    settings: Settings,
    cluster: str,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    message: str,
    error: type[Exception],
    says: str,
) -> None:
    # Given EKS refusing CreateFargateProfile
    eks = boto3.client("eks")
    eks_answers_for_the_step(monkeypatch, eks)
    names: list[str] = []  # the profile the step asked for
    eks.meta.events.register(
        "provide-client-params.eks.CreateFargateProfile", lambda params, **_: names.append(params["fargateProfileName"])
    )
    fail_with(eks, "CreateFargateProfile", code, message, 409 if "InUse" in code else 400)
    # When the step runs, then the refusal is its named error, in EKS's words where it has them
    with pytest.raises(error) as caught:
        ensure_fargate_profile(settings, request(), ROLE)
    assert type(caught.value) is error
    assert str(caught.value) == says.replace("{name}", names[0])


def test_a_retried_ensure_finds_its_own_profile_still_its_own(settings: Settings, cluster: str) -> None:
    # Given an execution whose EnsureFargateProfile created the profile, but whose answer was lost (Lambda.Unknown)
    execution = "arn:aws:states:us-west-2:111122223333:execution:ProvisionStateMachine:blog-fargate-web(2)"
    first = ensure_fargate_profile(settings, request(), ROLE, execution)
    # When the state retries the step, then the profile it finds is still this execution's to compensate
    again = ensure_fargate_profile(settings, request(), ROLE, execution)
    assert (first.created, again.created, again.name) == (True, True, first.name)
    # while another execution that finds it does not own it
    other = ensure_fargate_profile(settings, request(), ROLE, execution.replace("web(2)", "api"))
    assert other.created is False
    tags = boto3.client("eks").describe_fargate_profile(clusterName="blog", fargateProfileName=first.name)
    assert tags["fargateProfile"]["tags"]["fargate-app/created-by"].endswith(":blog-fargate-web_2_")


def test_a_profile_that_starts_deleting_while_awaited_fails_at_once(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    _set_status(profile.name, "DELETING")
    with pytest.raises(ProfileCreateFailed, match="is DELETING .*provision again"):
        check_fargate_profile(settings, profile.model_copy(update={"waiting_since": datetime.now(UTC)}))


def test_a_profile_recorded_before_the_retry_poll_is_still_read() -> None:
    # Given a provision output recorded by the earlier Wait/Choice loop (attempt, nextWaitSeconds)
    recorded = {
        "cluster": "blog",
        "name": "fargate-app-fargate",
        "status": "ACTIVE",
        "created": True,
        "selectors": [{"namespace": "fargate", "labels": {}}],
        "subnets": ["subnet-1"],
        "attempt": 4,
        "nextWaitSeconds": 0,
    }
    event = {"request": request().to_json(), "provision": {"fargateProfile": recorded, "status": "SUCCEEDED"}}
    # When a teardown reads it, then the profile is understood and the old fields are dropped
    parsed = ReleaseProfileEvent.parse(event, region="us-west-2", account="111122223333")
    assert parsed.provision is not None and parsed.provision.fargate_profile is not None
    assert parsed.provision.fargate_profile.name == "fargate-app-fargate"
    assert "attempt" not in parsed.provision.fargate_profile.to_json()


# --- the shared strategy and EKS's quota -------------------------------------------------------------------------------
def test_the_shared_profile_serves_every_namespace_after_the_first_app(
    settings: Settings, cluster: str, network: Network
) -> None:
    # When the first app of the cluster gets its profile, then apps of two other namespaces
    first = ensure_fargate_profile(settings, request(), ROLE)
    others = [ensure_fargate_profile(settings, request(namespace=ns, app="api"), ROLE) for ns in ("team-a", "team-b")]
    # Then one profile selects every managed pod in any namespace, in the cluster's private subnets, and is reused
    assert (first.created, [o.created for o in others], {o.name for o in others}) == (
        True,
        [False, False],
        {first.name},
    )
    assert [s.to_json() for s in first.selectors] == [{"namespace": "*", "labels": MANAGED_PODS}]
    assert first.subnets == sorted(network.private)
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == [first.name]


def test_requests_with_their_own_subnets_share_a_profile_per_subnet_set(
    settings: Settings, cluster: str, network: Network
) -> None:
    default = ensure_fargate_profile(settings, request(), ROLE)
    own = ensure_fargate_profile(settings, request(app="api", subnets=[network.private[1]]), ROLE)
    again = ensure_fargate_profile(settings, request(app="web", namespace="x", subnets=[network.private[1]]), ROLE)
    assert (own.created, own.subnets, again.name) == (True, [network.private[1]], own.name)
    assert own.name != default.name


@pytest.mark.parametrize("strategy", ["shared", "per-namespace"])
def test_an_eleventh_profile_is_refused_before_anything_is_created(
    settings: Settings, cluster: str, network: Network, strategy: str
) -> None:
    # Given a cluster with EKS's 10 profiles, none of which schedules the app
    fill_cluster(network, 10)
    chosen = settings.model_copy(update={"profile_strategy": strategy})
    # When ValidateRequest checks, and when EnsureFargateProfile runs anyway
    from fargate_app.aws.eks import check_profile_quota
    from fargate_app.errors import ProfileQuotaExceeded

    with pytest.raises(ProfileQuotaExceeded) as refused:
        check_profile_quota(chosen, request(), sorted(network.private))
    fix = {
        "per-namespace": "switch the stack's FargateProfileStrategy to shared (one profile for every app)",
        "shared": "delete profiles you no longer need",
    }[strategy]
    assert str(refused.value) == (
        f"cluster blog has 10 Fargate profiles, EKS's limit of 10 per cluster, and the app needs a new one: {fix}"
    )
    with pytest.raises(ProfileQuotaExceeded) as refused_again:
        ensure_fargate_profile(chosen, request(), ROLE)
    assert str(refused_again.value) == str(refused.value)
    # Then no 11th profile exists
    assert len(boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"]) == 10


def test_a_full_cluster_still_serves_an_app_its_profiles_schedule(
    settings: Settings, cluster: str, network: Network
) -> None:
    from fargate_app.aws.eks import check_profile_quota

    first = ensure_fargate_profile(settings, request(), ROLE)
    fill_cluster(network, 9)
    check_profile_quota(settings, request(namespace="new-team"), sorted(network.private))  # no error: reused
    assert ensure_fargate_profile(settings, request(namespace="new-team"), ROLE).name == first.name


def test_eks_refusing_the_profile_for_its_quota_is_permanent(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fargate_app.errors import ProfileQuotaExceeded

    eks_refusing(
        monkeypatch, "CreateFargateProfile", "ResourceLimitExceededException", "Fargate profile limit exceeded"
    )
    with pytest.raises(ProfileQuotaExceeded, match="delete profiles you no longer need"):
        ensure_fargate_profile(settings, request(), ROLE)


def test_a_per_namespace_profile_name_is_stable_per_namespace_and_labels(per_namespace: Settings) -> None:
    from fargate_app.aws.eks import profile_name

    same = profile_name(per_namespace, request(labels={"team": "blue", "tier": "web"}))
    reordered = profile_name(per_namespace, request(labels={"tier": "web", "team": "blue"}))
    other = profile_name(per_namespace, request(labels={"team": "red", "tier": "web"}))
    unlabelled = profile_name(per_namespace, request())
    assert same == reordered
    assert len({same, other, unlabelled}) == 3
    for name in (same, other, unlabelled):
        assert re.fullmatch(r"fargate-app-fargate-[0-9a-f]{8}", name), name


def test_the_app_holds_the_profile_it_creates_or_reuses(settings: Settings, cluster: str) -> None:
    created = ensure_fargate_profile(settings, request(), ROLE, holder="blog/fargate/demo-app")
    reused = ensure_fargate_profile(settings, request(app="web"), ROLE, holder="blog/fargate/web")
    assert reused.name == created.name and reused.created is False
    assert holders_of(f"fargateProfile/blog/{created.name}") == ["blog/fargate/demo-app", "blog/fargate/web"]


def test_a_profile_its_last_holder_is_deleting_is_not_reused_meanwhile(settings: Settings, cluster: str) -> None:
    # Given a profile whose last holder's release has claimed it for deletion
    profile = ensure_fargate_profile(settings, request(), ROLE, holder="blog/fargate/demo-app")
    resource = f"fargateProfile/blog/{profile.name}"
    release(settings, resource, "blog/fargate/demo-app")
    assert holders._claim(settings, resource, "teardown-1") is None
    # When another app's provision would reuse it, then the step is retried later, holding nothing
    with pytest.raises(SharedResourceReleasing):
        ensure_fargate_profile(settings, request(app="web"), ROLE, holder="blog/fargate/web")
    assert holders_of(resource) == []


def test_a_profile_deleted_between_the_listing_and_the_take_is_made_anew_on_the_retry(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a profile that schedules the app, which the last holder's teardown deletes right after the listing
    profile = ensure_fargate_profile(settings, request(), ROLE)
    resource = f"fargateProfile/blog/{profile.name}"
    taking = holders.take

    def deleted_first(settings: Settings, resource: str, holder: str) -> bool:
        boto3.client("eks").delete_fargate_profile(clusterName="blog", fargateProfileName=profile.name)
        return taking(settings, resource, holder)

    monkeypatch.setattr(holders, "take", deleted_first)
    # When the app's provision takes it, then it sees the profile gone and is retried, holding nothing
    with pytest.raises(ProfileOperationInProgress, match="deleted meanwhile"):
        ensure_fargate_profile(settings, request(app="web"), ROLE, holder="blog/fargate/web")
    assert holders_of(resource) == []
    # and the retry creates it anew and holds it
    monkeypatch.setattr(holders, "take", taking)
    again = ensure_fargate_profile(settings, request(app="web"), ROLE, holder="blog/fargate/web")
    assert again.created is True and holders_of(resource) == ["blog/fargate/web"]


@pytest.mark.parametrize(
    ("status", "issues", "expect", "error", "says"),
    [
        (None, None, "ACTIVE", ProfileCreateFailed, "disappeared while CREATING"),  # deleted (status None: gone)
        (
            "CREATE_FAILED",
            [{"code": "AccessDenied", "message": "no role"}, {"code": "ClusterUnreachable", "message": "down"}],
            "ACTIVE",
            ProfileCreateFailed,
            "is CREATE_FAILED: AccessDenied: no role; ClusterUnreachable: down",
        ),
        ("DELETE_FAILED", [], "DELETED", ProfileCreateFailed, "is DELETE_FAILED: no detail"),
        (
            "DELETING",
            None,
            "ACTIVE",
            ProfileCreateFailed,
            "is DELETING (another app's teardown removed it): provision again to create a profile for the app",
        ),
        ("", None, "ACTIVE", ProfileNotYetActive, "is UNKNOWN (0 s so far)"),  # no status: this poll learned nothing
    ],
    ids=["gone", "create-failed", "delete-failed", "deleting", "no-status"],
)
def test_each_poll_outcome_says_what_eks_answered(
    settings: Settings, cluster: str, status: str | None, issues: Any, expect: str, error: type, says: str
) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    if status is None:
        boto3.client("eks").delete_fargate_profile(clusterName="blog", fargateProfileName=profile.name)
    else:
        _set_status(profile.name, status, issues)
    with pytest.raises(error) as raised:
        check_fargate_profile(settings, profile.model_copy(update={"waiting_since": None}), expect=expect)
    assert raised.value.message == f"Fargate profile {profile.name} of cluster blog {says}"  # type: ignore[attr-defined]


def test_eks_refusing_the_poll_names_the_profile(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    with stubbed(monkeypatch, "fargate_app.aws.eks", "eks") as eks:
        eks.add_client_error("describe_fargate_profile", "AccessDeniedException", "not allowed")
        with pytest.raises(AccessDenied) as refused:
            check_fargate_profile(settings, profile)
    assert refused.value.message.startswith(f"describe Fargate profile {profile.name}: not allowed")


# --- deletion, subnets and names, as EKS and EC2 answer --------------------------------------------------------------
def test_deleting_a_profile_says_whether_it_was_there(settings: Settings, cluster: str) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    assert (delete_fargate_profile("blog", profile.name), delete_fargate_profile("blog", profile.name)) == (True, False)


@pytest.mark.parametrize(
    ("code", "error", "says"),
    [
        ("ResourceInUseException", ProfileOperationInProgress, "cluster blog: {operation} refused"),
        ("ClientException", PermanentError, "delete Fargate profile {name}: ClientException: {operation} refused"),
    ],
)
def test_a_refused_deletion_is_busy_or_permanent_naming_what(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch, code: str, error: type, says: str
) -> None:
    profile = ensure_fargate_profile(settings, request(), ROLE)
    eks = boto3.client("eks")
    fail_with(eks, "DeleteFargateProfile", code, "DeleteFargateProfile refused", 409)
    monkeypatch.setattr("fargate_app.aws.eks.client", lambda service: eks)
    with pytest.raises(error) as refused:
        delete_fargate_profile("blog", profile.name)
    assert type(refused.value) is error
    assert str(refused.value) == says.format(name=profile.name, operation="DeleteFargateProfile")


def lose_the_create_race(network: Network, settings: Settings, selector: dict[str, Any]) -> tuple[str, Any]:
    """Our profile name taken by a profile created after our listing (the create answers "already exists"); the
    name, and the EKS client the step is given."""
    ours = profile_under_our_name(settings, network, selector)
    eks = boto3.client("eks")
    fail_with(eks, "CreateFargateProfile", "ResourceInUseException", f"Fargate Profile {ours} already exists", 409)
    return ours, eks


def test_a_profile_created_under_our_name_meanwhile_is_adopted_when_it_schedules_the_managed_pods(
    per_namespace: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, eks = lose_the_create_race(network, per_namespace, {"namespace": "fargate", "labels": MANAGED_PODS})
    eks_answers_for_the_step(monkeypatch, eks)
    monkeypatch.setattr("fargate_app.aws.eks._list_profiles", lambda cluster: [])
    profile = ensure_fargate_profile(per_namespace, request(), ROLE)
    assert (profile.name, profile.created) == (ours, False)


def test_adopting_a_profile_eks_will_not_describe_names_it(
    per_namespace: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given our name taken meanwhile, and EKS refusing to describe that profile
    ours, eks = lose_the_create_race(network, per_namespace, {"namespace": "fargate"})
    fail_with(eks, "DescribeFargateProfile", "ClientException", "DescribeFargateProfile refused")
    eks_answers_for_the_step(monkeypatch, eks)
    monkeypatch.setattr("fargate_app.aws.eks._list_profiles", lambda cluster: [])
    with pytest.raises(PermanentError) as refused:
        ensure_fargate_profile(per_namespace, request(), ROLE)
    assert str(refused.value) == f"describe Fargate profile {ours}: ClientException: DescribeFargateProfile refused"


@pytest.mark.parametrize("operation", ["DescribeSubnets", "DescribeRouteTables"])
def test_ec2_refusing_a_read_of_the_subnet_check_names_it(
    settings: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    # Given EC2 refusing the subnets asked for (when the request names some) or the VPC's route tables
    ec2 = boto3.client("ec2")
    fail_with(ec2, operation, "UnauthorizedOperation", f"{operation} refused", 403)
    monkeypatch.setattr("fargate_app.aws.eks.client", lambda service: ec2)
    cluster_description = boto3.client("eks").describe_cluster(name="blog")["cluster"]
    asked = request(subnets=network.private) if operation == "DescribeSubnets" else request()
    call = (
        f"describe subnets {', '.join(asked.subnets)}"
        if asked.subnets
        else "read the route tables of cluster blog's VPC"
    )
    # When the subnets are checked, then the refusal names the call and what to grant
    with pytest.raises(PermanentError) as refused:
        check_subnets(asked, cluster_description)
    assert str(refused.value) == f"{call}: {operation} refused; grant it to the function's role in template.yaml"


@pytest.mark.parametrize(("waited", "error"), [(1199, ProfileNotYetActive), (1200, PollTimeout)])
def test_the_profile_wait_times_out_exactly_at_its_limit(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch, waited: int, error: type
) -> None:
    # Given a profile still CREATING, awaited since `waited` seconds by the stack's clock (timeout 1200 s)
    profile = ensure_fargate_profile(settings, request(), ROLE)
    _set_status(profile.name, "CREATING")
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    monkeypatch.setattr("fargate_app.aws.eks.datetime", clock_stopped_at(now))
    awaited = profile.model_copy(update={"waiting_since": now - timedelta(seconds=waited)})
    # When it is checked, then the limit itself is the timeout
    with pytest.raises(error):
        check_fargate_profile(settings.model_copy(update={"profile_wait_timeout_seconds": 1200}), awaited)


def test_a_per_namespace_profile_name_hashes_the_labels_sorted(per_namespace: Settings) -> None:
    labels = {"tier": "web", "team": "blue"}
    digest = hashlib.sha256(b'{"team": "blue", "tier": "web"}').hexdigest()[:8]
    assert profile_name(per_namespace, request(labels=labels)) == f"fargate-app-fargate-{digest}"


def test_a_reused_profile_eks_will_not_describe_after_the_take_names_it_and_is_let_go(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a profile the app would reuse, and EKS refusing to describe it once the app took it
    created = ensure_fargate_profile(settings, request(), ROLE, holder="blog/fargate/demo-app")
    eks_refusing(monkeypatch, "DescribeFargateProfile", "ClientException", "DescribeFargateProfile refused")
    # When another app's step runs, then the refusal names the profile, and that app holds nothing
    with pytest.raises(PermanentError) as refused:
        ensure_fargate_profile(settings, request(app="web"), ROLE, holder="blog/fargate/web")
    assert (
        str(refused.value)
        == f"describe Fargate profile {created.name}: ClientException: DescribeFargateProfile refused"
    )
    assert holders_of(f"fargateProfile/blog/{created.name}") == ["blog/fargate/demo-app"]


def test_a_failed_profile_without_health_issues_says_no_detail(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given EKS answering CREATE_FAILED without a health member (optional in its model)
    profile = ensure_fargate_profile(settings, request(), ROLE)
    with stubbed(monkeypatch, "fargate_app.aws.eks", "eks") as eks:
        eks.add_response("describe_fargate_profile", {"fargateProfile": {"status": "CREATE_FAILED"}})
        with pytest.raises(ProfileCreateFailed) as failed:
            check_fargate_profile(settings, profile)
    assert str(failed.value) == f"Fargate profile {profile.name} of cluster blog is CREATE_FAILED: no detail"


def test_a_long_prefix_gives_profile_names_of_eks_s_100_characters_at_most(per_namespace: Settings) -> None:
    long_prefix = per_namespace.model_copy(update={"profile_prefix": "p" * 40})
    name = profile_name(long_prefix, request(namespace="n" * 63))
    assert name == f"{'p' * 40}-{'n' * 63}"[:100] and len(name) == 100


def test_a_shared_profile_is_named_after_its_subnets_and_role_within_a_label_value(
    settings: Settings, network: Network
) -> None:
    from fargate_app.aws.eks import shared_profile_name

    digest = hashlib.sha256(json.dumps([sorted(network.private), ROLE]).encode()).hexdigest()[:8]
    assert shared_profile_name(settings, list(reversed(network.private)), ROLE) == f"fargate-app-shared-{digest}"
    long_prefix = settings.model_copy(update={"profile_prefix": "p" * 60})
    assert shared_profile_name(long_prefix, network.private, ROLE) == f"{'p' * 60}-shared-{digest}"[:63]


def test_each_profile_is_created_with_its_own_idempotency_token(
    per_namespace: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the step's CreateFargateProfile calls watched
    eks = boto3.client("eks")
    tokens: list[str] = []
    eks.meta.events.register(
        "provide-client-params.eks.CreateFargateProfile",
        lambda params, **_: tokens.append(params["clientRequestToken"]),
    )
    eks_answers_for_the_step(monkeypatch, eks)
    # When one execution creates its profile, creates it again after it was deleted, and another namespace's
    first = ensure_fargate_profile(per_namespace, request(), ROLE, execution_id="arn:execution:1")
    eks.delete_fargate_profile(clusterName="blog", fargateProfileName=first.name)
    ensure_fargate_profile(per_namespace, request(), ROLE, execution_id="arn:execution:1")
    ensure_fargate_profile(per_namespace, request(namespace="shop"), ROLE, execution_id="arn:execution:1")
    # Then a retried create asks with the same token (EKS answers the first), another profile with another
    assert tokens[0] == tokens[1] != tokens[2]


def test_the_shared_profile_created_is_named_after_the_subnets_and_role_it_uses(
    settings: Settings, cluster: str, network: Network
) -> None:
    from fargate_app.aws.eks import shared_profile_name  # its recipe is pinned by the test above

    profile = ensure_fargate_profile(settings, request(), ROLE)
    assert profile.name == shared_profile_name(settings, network.private, ROLE)


def test_a_per_namespace_profile_selects_the_namespace_and_the_request_s_labels(
    per_namespace: Settings, cluster: str
) -> None:
    profile = ensure_fargate_profile(per_namespace, request(labels={"tier": "web"}), ROLE)
    described = boto3.client("eks").describe_fargate_profile(clusterName="blog", fargateProfileName=profile.name)
    assert described["fargateProfile"]["selectors"] == [{"namespace": "fargate", "labels": {"tier": "web"}}]


def test_an_eks_endpoint_that_does_not_answer_the_create_is_retried_later(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from fargate_app.errors import AwsThrottled

    eks = boto3.client("eks")

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://eks.us-west-2.amazonaws.com")

    eks.meta.events.register("before-call.eks.CreateFargateProfile", unreachable)
    names: list[str] = []
    eks.meta.events.register(
        "provide-client-params.eks.CreateFargateProfile", lambda params, **_: names.append(params["fargateProfileName"])
    )
    eks_answers_for_the_step(monkeypatch, eks)
    with pytest.raises(AwsThrottled) as unanswered:
        ensure_fargate_profile(settings, request(), ROLE)
    assert str(unanswered.value) == (
        f"create Fargate profile {names[0]}: the AWS endpoint did not answer (EndpointConnectionError); will retry"
    )


def test_of_several_profiles_that_schedule_the_app_the_first_by_name_is_reused(
    settings: Settings, cluster: str, network: Network
) -> None:
    for name in ("zeta", "alpha"):  # listed in the order they were made
        boto3.client("eks").create_fargate_profile(
            fargateProfileName=name,
            clusterName="blog",
            podExecutionRoleArn=ROLE,
            subnets=network.private,
            selectors=[{"namespace": "fargate"}],
        )
    reused = ensure_fargate_profile(settings, request(), ROLE)
    assert (reused.name, reused.created) == ("alpha", False)


def test_a_profile_deleted_between_the_listing_and_its_description_is_passed_over(
    settings: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given someone's profile that schedules the app, gone by the time the step describes it
    someone_elses_profile(network, [{"namespace": "fargate"}])
    eks_refusing(monkeypatch, "DescribeFargateProfile", "ResourceNotFoundException", "No Fargate Profile found", 404)
    # When the step runs, then it makes its own
    profile = ensure_fargate_profile(settings, request(), ROLE)
    assert profile.created is True and profile.name != "existing"


def test_a_refused_listing_of_the_cluster_s_profiles_names_the_cluster(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eks_refusing(monkeypatch, "ListFargateProfiles", "ClientException", "ListFargateProfiles refused")
    with pytest.raises(PermanentError) as refused:
        ensure_fargate_profile(settings, request(), ROLE)
    assert str(refused.value) == "list Fargate profiles of cluster blog: ClientException: ListFargateProfiles refused"


def test_a_subnet_without_its_own_route_table_is_as_public_as_the_vpc_s_main_one(
    settings: Settings, cluster: str, network: Network
) -> None:
    # Given the VPC's main route table sending 0.0.0.0/0 to an internet gateway: the private subnets, which have no
    # route table of their own, use it (VPC user guide, "Main route table")
    ec2 = boto3.client("ec2")
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [network.vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    igw = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    # When the step is asked for those subnets, then they are refused as public
    with pytest.raises(SubnetNotPrivate) as refused:
        ensure_fargate_profile(settings, request(subnets=network.private), ROLE)
    assert str(refused.value) == (
        f"subnets {', '.join(sorted(network.private))} route to an internet gateway; Fargate pods need private "
        "subnets (route through a NAT gateway or VPC endpoints instead)"
    )


def test_a_cluster_described_without_subnets_has_no_private_subnet(settings: Settings, network: Network) -> None:
    # EKS's model makes no output member required: a VPC configuration without subnetIds offers none
    with pytest.raises(SubnetNotPrivate) as refused:
        check_subnets(request(), {"name": "blog", "resourcesVpcConfig": {"vpcId": network.vpc}})
    assert str(refused.value) == "cluster blog has no private subnet; pass 'subnets' with private subnets of its VPC"


def test_route_tables_described_without_associations_or_routes_route_nowhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given EC2 answering with a main route table without routes and a table without associations (its model makes
    # no output member required), for the VPC asked by its filter as EC2 names it (EC2 filter names are
    # case-sensitive; moto matches them in any case, the sandbox's front as EC2 does: ec2_rules)
    described = {"name": "blog", "resourcesVpcConfig": {"vpcId": "vpc-1", "subnetIds": ["subnet-b", "subnet-a"]}}
    tables = [{"RouteTableId": "rtb-main", "Associations": [{"Main": True}]}, {"RouteTableId": "rtb-lone"}]
    with stubbed(monkeypatch, "fargate_app.aws.eks", "ec2") as ec2:
        ec2.add_response(
            "describe_route_tables", {"RouteTables": tables}, {"Filters": [{"Name": "vpc-id", "Values": ["vpc-1"]}]}
        )
        # When the subnets of the cluster are checked, then both are private
        assert check_subnets(request(), described) == ["subnet-a", "subnet-b"]


def test_a_created_profile_eks_answers_without_subnets_is_tracked_without_them(
    settings: Settings, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given EKS's answer to the create without its subnets (no output member is required by its model)
    eks = boto3.client("eks")

    def without_subnets(parsed: dict[str, Any], **_: Any) -> None:
        parsed["fargateProfile"].pop("subnets", None)

    eks.meta.events.register("after-call.eks.CreateFargateProfile", without_subnets)
    eks_answers_for_the_step(monkeypatch, eks)
    # When the step creates the profile, then it tracks no subnets rather than failing after the create
    profile = ensure_fargate_profile(settings, request(), ROLE)
    assert (profile.created, profile.subnets) == (True, [])


@pytest.mark.parametrize(
    ("operation", "call"),
    [("DescribeCluster", "describe EKS cluster blog"), ("DescribeFargateProfile", "describe Fargate profile fp-a")],
)
def test_eks_refusing_the_cluster_or_the_profile_taken_names_the_call(
    settings: Settings, cluster: str, network: Network, monkeypatch: pytest.MonkeyPatch, operation: str, call: str
) -> None:
    # Given a profile that schedules the app, listed before the take (the read after the take is refused)
    selectors = [{"namespace": "*", "labels": MANAGED}]
    listed = [profile_answer("fp-a", selectors=selectors, subnets=network.private)]
    monkeypatch.setattr("fargate_app.aws.eks._list_profiles", lambda cluster: listed)
    eks_refusing(monkeypatch, operation, "ClientException", f"{operation} refused")
    with pytest.raises(PermanentError) as refused:
        ensure_fargate_profile(settings, request(), ROLE, holder="blog/fargate/demo-app")
    assert str(refused.value) == f"{call}: ClientException: {operation} refused"


MANAGED = {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}


def profile_answer(name: str, status: str = "ACTIVE", **fields: Any) -> dict[str, Any]:
    """A profile as DescribeFargateProfile gives it (what reusable_profile reads)."""
    return {"fargateProfileName": name, "clusterName": "blog", "status": status, **fields}


class TestWhichProfileIsReused:
    """Among several profiles that could schedule the app, the first by name; the others are passed over."""

    SUBNETS = ("subnet-1", "subnet-2")

    def test_the_first_by_name_whatever_order_eks_lists_them_in(self, per_namespace: Settings) -> None:
        listed = [profile_answer(name, selectors=[{"namespace": "fargate"}]) for name in ("fp-b", "fp-a")]
        chosen = reusable_profile(per_namespace, request(), listed, list(self.SUBNETS))
        assert chosen is not None and chosen["fargateProfileName"] == "fp-a"

    def test_one_that_does_not_schedule_the_app_is_passed_over_for_the_next(self, per_namespace: Settings) -> None:
        listed = [
            profile_answer("fp-a", selectors=[{"namespace": "other"}]),
            profile_answer("fp-b", status="DELETING", selectors=[{"namespace": "fargate"}]),
            profile_answer("fp-c", selectors=[{"namespace": "fargate"}]),
        ]
        chosen = reusable_profile(per_namespace, request(), listed, list(self.SUBNETS))
        assert chosen is not None and chosen["fargateProfileName"] == "fp-c"

    def test_shared_one_of_other_subnets_is_passed_over_for_the_next(self, settings: Settings) -> None:
        selectors = [{"namespace": "*", "labels": MANAGED}]
        listed = [
            profile_answer("fp-a", selectors=selectors, subnets=["subnet-9"]),
            profile_answer("fp-b", selectors=selectors, subnets=list(reversed(self.SUBNETS))),
        ]
        chosen = reusable_profile(settings, request(), listed, list(self.SUBNETS))
        assert chosen is not None and chosen["fargateProfileName"] == "fp-b"
