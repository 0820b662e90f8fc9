"""ValidateRequest in process, against moto's EKS, EC2 and Secrets Manager: who asked, then the account's checks
(cluster, Kubernetes version, subnets, profile quota, credential secret), each refusal named, nothing created."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from moto.eks.models import eks_backends
from project_template import APPS_TABLE_NAME
from request_edits import walkthrough_request
from unit_support import ROLE, Network, create_cluster, fill_cluster

from fargate_app.config import Settings
from fargate_app.errors import (
    AppBusy,
    ClusterNotActive,
    ClusterNotFound,
    ClusterVersionUnsupported,
    InvalidRequest,
    ProfileQuotaExceeded,
    SubnetNotFound,
    SubnetNotPrivate,
    UpstreamCredentialInvalid,
)
from fargate_app.validation import validate_start

pytestmark = pytest.mark.usefixtures("aws", "cache_rules_checked")

ACCOUNT = "111122223333"
EXECUTION = "arn:aws:states:us-west-2:111122223333:execution:Provision:web-1"
DOCKER_HUB_IMAGE = "docker.io/library/nginx:stable"  # Docker Hub's cache rules need a credential secret
CALLER = "arn:aws:iam::111122223333:role/platform-team"


@pytest.fixture
def cache_rules_checked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The settings and request each cache rule check was given. moto has no pull-through-cache API; the check
    itself is test_cache_rule.py's (botocore's Stubber on the real ECR model)."""
    checked: list[Any] = []
    monkeypatch.setattr(
        "fargate_app.validation.check_cache_rule", lambda settings, request: checked.append((settings, request))
    )
    return checked


def start(settings: Settings, execution_input: Any) -> Any:
    return validate_start(settings, {"request": execution_input, "executionArn": EXECUTION})


def set_cluster(name: str, **attributes: Any) -> None:
    """Change moto's cluster the way EKS would show it (status, version): moto offers no call for it."""
    cluster = eks_backends[ACCOUNT]["us-west-2"].clusters[name]
    for key, value in attributes.items():
        setattr(cluster, key, value)


def other_vpc_subnet() -> str:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"])


class TestTheRevisionItMakes:
    """What RecordProvisionStart writes, planned from the app's inventory item (its one read of the table)."""

    def _recorded(self, **attributes: Any) -> None:
        item = {"app": {"S": "blog/fargate/demo-app"}, "version": {"N": "4"}, **attributes}
        boto3.client("dynamodb").put_item(TableName=APPS_TABLE_NAME, Item=item)

    def test_a_first_provision_is_revision_one_of_a_new_item(self, settings: Settings, cluster: str) -> None:
        plan = start(settings, {"request": walkthrough_request(), "caller": CALLER}).inventory
        assert (plan.key, plan.app_state, plan.revision, plan.version, plan.next_version) == (
            "blog/fargate/demo-app",
            "PROVISIONING",
            "1",
            "0",
            "1",
        )
        assert (plan.cluster_namespace, plan.caller, plan.requested_image) == (
            "blog/fargate",
            CALLER,
            "public.ecr.aws/nginx/nginx:stable",
        )
        assert json.loads(plan.request_json)["app"] == "demo-app"
        # the request's identity: the SHA-256 of the canonical JSON the item records
        assert plan.request_hash == hashlib.sha256(plan.request_json.encode()).hexdigest()

    def test_a_changed_request_of_a_running_app_is_an_update_to_the_next_revision(
        self, settings: Settings, cluster: str
    ) -> None:
        # Given the app running revision 3 of another request
        self._recorded(revision={"N": "3"}, requestHash={"S": "0" * 64}, lastGood={"M": {"cached": {"S": "x"}}})
        # When a changed request is validated (a console start: the inventory tells it is an update)
        plan = start(settings, walkthrough_request()).inventory
        # Then it makes revision 4 from version 4 of the item
        assert (plan.app_state, plan.revision, plan.version, plan.next_version) == ("UPDATING", "4", "4", "5")

    def test_the_same_request_again_keeps_its_revision(self, settings: Settings, cluster: str) -> None:
        # Given the app's item recording this very request (a retry after a failure)
        first = start(settings, walkthrough_request()).inventory
        self._recorded(revision={"N": "2"}, requestHash={"S": first.request_hash})
        # When it is validated again, then the revision is the same, and without a last good one it is no update
        plan = start(settings, walkthrough_request()).inventory
        assert (plan.app_state, plan.revision, plan.version) == ("PROVISIONING", "2", "4")


class TestTheLastGoodRevision:
    """What a failed update applies again comes from the app's item, however the update was started: a console or
    EventBridge start carries no ``previous`` of its own."""

    GOOD = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:demo-1"

    def _running(self, **last_good: dict[str, Any]) -> None:
        item = {
            "app": {"S": "blog/fargate/demo-app"},
            "version": {"N": "3"},
            "revision": {"N": "1"},
            "requestHash": {"S": "0" * 64},
            "executionStatus": {"S": "SUCCEEDED"},
            "executionArn": {"S": self.GOOD},
            **({"lastGood": {"M": last_good}} if last_good else {}),
        }
        boto3.client("dynamodb").put_item(TableName=APPS_TABLE_NAME, Item=item)

    def test_a_console_update_carries_the_items_last_good_revision(self, settings: Settings, cluster: str) -> None:
        # Given the app running its revision 1, recorded as RecordProvisionSucceeded writes it
        good_request = {**walkthrough_request(), "replicas": 1}
        self._running(
            executionArn={"S": self.GOOD},
            revision={"N": "1"},
            requestJson={"S": json.dumps(good_request)},
            cached={"S": "111122223333.dkr.ecr.us-west-2.amazonaws.com/ecr-public/nginx/nginx@sha256:" + "ab" * 32},
            caller={"S": CALLER},
            fargateProfileName={"S": "fargate-app-shared-0a1b2c3d"},
            resultJson={"S": json.dumps({"cacheRule": {"ecrRepositoryPrefix": "ecr-public"}})},
        )
        # When a changed request is started from the console
        validated = start(settings, {**walkthrough_request(), "cpu": "500m"})
        # Then it carries that revision as ApplyApp applied it: a failure at or after ApplyApp applies it again
        assert validated.previous == {
            "executionArn": self.GOOD,
            "request": good_request,
            "image": {
                "cached": "111122223333.dkr.ecr.us-west-2.amazonaws.com/ecr-public/nginx/nginx@sha256:" + "ab" * 32
            },
            "caller": CALLER,
            "fargateProfileName": "fargate-app-shared-0a1b2c3d",
            "cacheRulePrefix": "ecr-public",  # what the revision holds: a failed update lets go only of the rest
        }
        assert validated.inventory.app_state == "UPDATING"

    def test_an_app_without_a_last_good_revision_is_a_first_provision(self, settings: Settings, cluster: str) -> None:
        # Given an app whose provisions failed, or that was torn down (the teardown's record removes lastGood)
        self._running()
        # When it is provisioned again, then a failure compensates by deleting, as for a first provision
        validated = start(settings, {"request": walkthrough_request(), "caller": CALLER})
        assert (validated.previous, validated.inventory.app_state) == (None, "PROVISIONING")


class TestOneExecutionOfAnAppAtATime:
    """A start from the console or an event while another execution of the app runs is refused before anything is
    created: the item records which execution is the app's current one, Step Functions says whether it still runs."""

    def _current(self, execution_arn: str, kind: str = "provision") -> None:
        item = {
            "app": {"S": "blog/fargate/demo-app"},
            "version": {"N": "2"},
            "kind": {"S": kind},
            "executionStatus": {"S": "RUNNING"},
            "executionArn": {"S": execution_arn},
        }
        boto3.client("dynamodb").put_item(TableName=APPS_TABLE_NAME, Item=item)

    def _started(self, machines: dict[str, str], kind: str) -> str:
        sfn = boto3.client("stepfunctions")
        return str(sfn.start_execution(stateMachineArn=machines[kind], input="{}")["executionArn"])

    @pytest.mark.parametrize("kind", ["provision", "teardown"])
    def test_a_start_while_another_execution_runs_is_refused_naming_it(
        self, settings: Settings, cluster: str, machines: dict[str, str], kind: str
    ) -> None:
        # Given the app's item recording another execution, which Step Functions still runs
        running = self._started(machines, kind)
        self._current(running, kind)
        # When a console start is validated, then it is refused, naming the running execution and its kind
        with pytest.raises(AppBusy) as refused:
            start(settings, walkthrough_request())
        assert f"running {kind} execution, {running.rsplit(':', 1)[-1]}" in str(refused.value)
        assert running in str(refused.value) and "nothing was created" in str(refused.value)

    @pytest.mark.parametrize("kind", ["provision", "teardown"])
    def test_an_execution_stopped_before_recording_its_end_does_not_hold_the_app(
        self, settings: Settings, cluster: str, machines: dict[str, str], kind: str
    ) -> None:
        # Given the item still saying RUNNING for an execution that was stopped (no end record: no Catch ran)
        stopped = self._started(machines, kind)
        boto3.client("stepfunctions").stop_execution(executionArn=stopped)
        self._current(stopped, kind)
        # When a console start is validated, then it plans the next revision from the item's version
        plan = start(settings, walkthrough_request()).inventory
        assert (plan.version, plan.next_version) == ("2", "3")

    def test_an_execution_step_functions_no_longer_knows_does_not_hold_the_app(
        self, settings: Settings, cluster: str, machines: dict[str, str]
    ) -> None:
        # Given the item recording an execution Step Functions has no record of (its 90 days are over)
        self._current(f"{machines['provision'].replace(':stateMachine:', ':execution:')}:long-gone")
        # When a console start is validated, then it is not refused
        assert start(settings, walkthrough_request()).inventory.version == "2"

    def test_its_own_start_record_does_not_refuse_a_retried_validation(
        self, settings: Settings, cluster: str, machines: dict[str, str]
    ) -> None:
        # Given the item recording this very execution, running
        running = self._started(machines, "provision")
        self._current(running)
        # When its validation runs (again), then it is not refused by itself
        validated = validate_start(settings, {"request": walkthrough_request(), "executionArn": running})
        assert (validated.execution_arn, validated.inventory.version) == (running, "2")


class TestWhoAsked:
    def test_a_console_start_is_the_request_itself(
        self, settings: Settings, cluster: str, cache_rules_checked: list[Any]
    ) -> None:
        # When
        validated = start(settings, walkthrough_request())

        # Then
        assert validated.caller == "console"
        assert validated.execution_arn == EXECUTION
        assert (validated.request.cluster, validated.request.namespace, validated.request.app) == (
            "blog",
            "fargate",
            "demo-app",
        )
        # the last check, after the cluster's, under the stack's settings (its account tells its own registry apart)
        assert cache_rules_checked == [(settings, validated.request)]

    def test_an_api_start_carries_the_caller_api_gateway_reported(self, settings: Settings, cluster: str) -> None:
        validated = start(settings, {"request": walkthrough_request(), "caller": CALLER})

        assert validated.caller == CALLER
        assert validated.request.app == "demo-app"

    def test_an_api_start_without_a_caller_counts_as_the_console(self, settings: Settings, cluster: str) -> None:
        assert start(settings, {"request": walkthrough_request()}).caller == "console"

    def test_an_update_carries_its_last_good_revision_as_given(self, settings: Settings, cluster: str) -> None:
        # Given an API start of an update, whose last good revision today's rules would refuse (cpu "1.5")
        previous = {"executionArn": EXECUTION, "request": {**walkthrough_request(), "cpu": "1.5"}, "image": {}}
        # When it is validated
        validated = start(settings, {"request": walkthrough_request(), "caller": CALLER, "previous": previous})
        # Then the state carries it unchanged for Compensate; a console start carries none
        assert validated.to_json()["previous"] == previous
        assert start(settings, walkthrough_request()).previous is None

    def test_a_last_good_revision_that_is_no_object_is_refused_by_name(self, settings: Settings, cluster: str) -> None:
        with pytest.raises(InvalidRequest) as refused:
            start(settings, {"request": walkthrough_request(), "previous": "demo-app-1"})

        assert refused.value.problems == {"previous": "must be the last good revision's ApplyApp input (a JSON object)"}

    def test_a_caller_that_is_no_principal_arn_is_refused_by_name(self, settings: Settings, cluster: str) -> None:
        with pytest.raises(InvalidRequest) as refused:
            start(settings, {"request": walkthrough_request(), "caller": "root; drop"})

        assert refused.value.problems == {"caller": "must be 'console' or the IAM principal ARN API Gateway reported"}

    def test_a_request_beside_other_keys_is_a_request_with_unknown_fields(
        self, settings: Settings, cluster: str
    ) -> None:
        # Given: not the API's input shape ({"request", "caller"} only), so it is read as a console request
        execution_input = {"request": walkthrough_request(), "callerx": CALLER}

        with pytest.raises(InvalidRequest) as refused:
            start(settings, execution_input)

        assert {"request", "callerx"} <= set(refused.value.problems)

    def test_the_execution_arn_is_empty_when_the_event_has_none(self, settings: Settings, cluster: str) -> None:
        assert validate_start(settings, {"request": walkthrough_request()}).execution_arn == ""


class TestTheCluster:
    def test_a_missing_cluster_is_named(self, settings: Settings, network: Network) -> None:
        with pytest.raises(ClusterNotFound, match="EKS cluster blog does not exist in this account and region"):
            start(settings, walkthrough_request())

    def test_a_cluster_still_creating_is_not_active(self, settings: Settings, cluster: str) -> None:
        set_cluster(cluster, status="CREATING")

        with pytest.raises(ClusterNotActive, match="EKS cluster blog is CREATING; Fargate profiles need an ACTIVE"):
            start(settings, walkthrough_request())

    @pytest.mark.parametrize("version", ["1.22", "1.30", "1.33", "2.0"])
    def test_versions_from_1_22_are_accepted(self, settings: Settings, cluster: str, version: str) -> None:
        set_cluster(cluster, version=version)

        assert start(settings, walkthrough_request()).request.cluster == "blog"

    @pytest.mark.parametrize("version", ["1.21", "1.3", "0.99"])
    def test_older_versions_are_refused_with_the_minimum(self, settings: Settings, cluster: str, version: str) -> None:
        # "1.3" sorts after "1.22" as text: the check must compare numbers
        set_cluster(cluster, version=version)

        with pytest.raises(ClusterVersionUnsupported) as refused:
            start(settings, walkthrough_request())

        assert str(refused.value) == (
            f"EKS cluster blog runs Kubernetes {version}; the app's objects need 1.22 or later (networking.k8s.io/v1 "
            "Ingress with pathType, server-side apply): upgrade the cluster"
        )

    @pytest.mark.parametrize("version", ["", "1", "v1.30", "1.x", "latest"])
    def test_an_unreadable_version_is_refused_as_unknown(self, settings: Settings, cluster: str, version: str) -> None:
        set_cluster(cluster, version=version)

        with pytest.raises(ClusterVersionUnsupported) as refused:
            start(settings, walkthrough_request())

        assert str(refused.value) == f"EKS cluster blog: Kubernetes version {version!r} unknown"


class TestSubnets:
    def test_requested_private_subnets_are_kept(self, settings: Settings, cluster: str, network: Network) -> None:
        validated = start(settings, walkthrough_request(subnets=network.private[:1]))

        assert validated.request.subnets == network.private[:1]

    def test_a_subnet_that_does_not_exist_is_named(self, settings: Settings, cluster: str) -> None:
        with pytest.raises(SubnetNotFound) as refused:
            start(settings, walkthrough_request(subnets=["subnet-0123456789abcdef0"]))

        assert str(refused.value).startswith("subnets: ")
        assert str(refused.value).endswith("; give subnets of the cluster's VPC")

    def test_a_subnet_of_another_vpc_is_named_with_the_cluster_vpc(
        self, settings: Settings, cluster: str, network: Network
    ) -> None:
        elsewhere = sorted([other_vpc_subnet(), other_vpc_subnet()])

        with pytest.raises(SubnetNotFound) as refused:
            start(settings, walkthrough_request(subnets=[elsewhere[1], network.private[0], elsewhere[0]]))

        assert str(refused.value) == (
            f"subnets {elsewhere[0]}, {elsewhere[1]} are not in VPC {network.vpc} of cluster blog; Fargate profiles "
            "take subnets of the cluster's VPC"
        )

    def test_a_public_subnet_is_refused(self, settings: Settings, cluster: str, network: Network) -> None:
        with pytest.raises(SubnetNotPrivate, match=f"subnets {network.public} route to an internet gateway"):
            start(settings, walkthrough_request(subnets=[network.private[0], network.public]))

    def test_a_cluster_with_only_public_subnets_is_refused(self, settings: Settings, network: Network) -> None:
        create_cluster("blog", [network.public], network.vpc)

        with pytest.raises(SubnetNotPrivate, match="cluster blog has no private subnet; pass 'subnets'"):
            start(settings, walkthrough_request())


class TestProfileQuota:
    def test_ten_profiles_of_others_leave_no_room(self, settings: Settings, cluster: str, network: Network) -> None:
        fill_cluster(network, 10)

        with pytest.raises(ProfileQuotaExceeded) as refused:
            start(settings, walkthrough_request())

        assert str(refused.value) == (
            "cluster blog has 10 Fargate profiles, EKS's limit of 10 per cluster, and the app needs a new one: delete "
            "profiles you no longer need"
        )

    def test_the_per_namespace_strategy_is_told_to_share(
        self, settings: Settings, cluster: str, network: Network
    ) -> None:
        fill_cluster(network, 10)

        with pytest.raises(ProfileQuotaExceeded, match="switch the stack's FargateProfileStrategy to shared"):
            start(settings.model_copy(update={"profile_strategy": "per-namespace"}), walkthrough_request())

    def test_nine_profiles_leave_room(self, settings: Settings, cluster: str, network: Network) -> None:
        fill_cluster(network, 9)

        assert start(settings, walkthrough_request()).request.app == "demo-app"

    def test_a_full_cluster_with_a_profile_for_the_app_needs_no_new_one(
        self, settings: Settings, cluster: str, network: Network
    ) -> None:
        fill_cluster(network, 9)
        boto3.client("eks").create_fargate_profile(
            fargateProfileName="fargate",
            clusterName="blog",
            podExecutionRoleArn=ROLE,
            subnets=network.private,
            selectors=[{"namespace": "fargate"}],
        )

        assert start(settings, walkthrough_request()).request.app == "demo-app"


class TestTheCredential:
    def test_a_missing_secret_is_named_with_what_to_create(self, settings: Settings, cluster: str) -> None:
        arn = "arn:aws:secretsmanager:us-west-2:111122223333:secret:ecr-pullthroughcache/docker-hub-AbCdEf"

        with pytest.raises(UpstreamCredentialInvalid) as refused:
            start(settings, walkthrough_request(image=DOCKER_HUB_IMAGE, credentialArn=arn))

        assert str(refused.value) == (
            f"credential secret {arn} does not exist: create it with the upstream registry's username and accessToken"
        )

    def test_an_existing_secret_passes(self, settings: Settings, cluster: str) -> None:
        arn = boto3.client("secretsmanager").create_secret(
            Name="ecr-pullthroughcache/docker-hub", SecretString='{"username": "u", "accessToken": "t"}'
        )["ARN"]

        assert (
            start(settings, walkthrough_request(image=DOCKER_HUB_IMAGE, credentialArn=arn)).request.credential_arn
            == arn
        )


def test_an_image_of_this_accounts_own_registry_needs_no_rule(settings: Settings, cluster: str) -> None:
    # ECR serves the account's own images without a pull-through-cache rule (checked with the account's own ID)
    own = f"{settings.account_id}.dkr.ecr.us-west-2.amazonaws.com/team/api:1.4"
    validated = start(settings, {**walkthrough_request(), "image": own})
    assert validated.request.image == own
