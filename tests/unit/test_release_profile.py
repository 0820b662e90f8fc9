"""ReleaseFargateProfile (teardown) against moto's EKS: which profile is the app's, when it is deleted, and what the
teardown reports kept. Who else a profile schedules is the Kubernetes emulator's side
(tests/integration/kube/test_kube_release_emulated.py); here it is given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto.eks.models import eks_backends
from request_edits import walkthrough_request
from unit_support import ROLE, Network, fail_with, stubbed

from fargate_app.aws.tags import CREATED_FOR_TAG, MANAGED_BY_TAG
from fargate_app.config import Settings
from fargate_app.errors import PermanentError
from fargate_app.holders import release as let_go
from fargate_app.holders import take
from fargate_app.teardown import ReleaseProfileEvent, release_fargate_profile

pytestmark = pytest.mark.usefixtures("aws", "cluster")

OURS = {MANAGED_BY_TAG: "fargate-app-provisioner"}
SELECTORS = [{"namespace": "fargate", "labels": {"team": "blue"}}]
CACHED = "111122223333.dkr.ecr.us-west-2.amazonaws.com/ecr-public/nginx/nginx@sha256:" + "a" * 64


@pytest.fixture
def users(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What else the profile schedules (``profile_users``'s answer), settable by the test."""
    found: list[str] = []
    monkeypatch.setattr("fargate_app.kube.usage.profile_users", lambda settings, request, profile: list(found))
    return found


def make_profile(network: Network, name: str, tags: dict[str, str], status: str = "ACTIVE") -> None:
    boto3.client("eks").create_fargate_profile(
        fargateProfileName=name,
        clusterName="blog",
        podExecutionRoleArn=ROLE,
        subnets=list(reversed(network.private)),
        selectors=SELECTORS,
        tags=tags,
    )
    eks_backends["111122223333"]["us-west-2"].clusters["blog"].fargate_profiles[name].status = status


def profiles() -> list[str]:
    return list(boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"])


def status_of(name: str) -> str:
    return str(eks_backends["111122223333"]["us-west-2"].clusters["blog"].fargate_profiles[name].status)


def event(provision: dict[str, Any] | None) -> ReleaseProfileEvent:
    body: dict[str, Any] = {"request": walkthrough_request()}
    if provision is not None:
        body["provision"] = provision
    return ReleaseProfileEvent.parse(body, region="us-west-2", account="111122223333")


def recorded(name: str, created: bool) -> dict[str, Any]:
    return {"cluster": "blog", "name": name, "status": "ACTIVE", "created": created, "selectors": SELECTORS}


class TestWhichProfileIsTheApps:
    def test_the_recorded_profile_it_created_is_deleted(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-web", OURS)
        before = datetime.now(UTC)

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        assert (release.deleting, release.kept, release.kept_resources) == (True, None, [])
        assert release.profile is not None
        assert (release.profile.name, release.profile.status, release.profile.cluster) == ("fp-web", "DELETING", "blog")
        assert release.profile.created is True
        assert release.profile.subnets == sorted(network.private)
        assert [s.to_json() for s in release.profile.selectors] == SELECTORS
        assert release.profile.waiting_since is not None and release.profile.waiting_since >= before
        assert "fp-web" not in profiles()  # moto deletes at once where EKS shows DELETING for minutes

    def test_a_reused_profile_of_this_project_is_deleted_by_the_last_app(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-shared", OURS)

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-shared", False)}))

        assert (release.deleting, release.kept, profiles()) == (True, None, [])

    def test_a_reused_profile_of_someone_else_is_kept_with_the_reason(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "theirs", {"owner": "team-b"})

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("theirs", False)}))

        assert (release.deleting, profiles()) == (False, ["theirs"])
        assert status_of("theirs") == "ACTIVE"
        assert release.kept == "the provision reused a profile this stack does not manage"
        assert release.profile is not None and release.profile.created is False
        assert release.kept_resources == [
            {
                "fargateProfile": "theirs",
                "reason": "the provision reused a profile this stack does not manage",
                "holders": [],
            }
        ]

    def test_a_profile_the_app_created_is_deleted_though_its_managed_by_tag_was_removed(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        # Given the profile this app's provision created (its record says so), whose tags someone has since removed
        make_profile(network, "fp-web", {"owner": "team-b"})

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        # Then the record decides: it is the app's to delete
        assert (release.deleting, release.kept, profiles()) == (True, None, [])

    def test_a_profile_eks_describes_without_status_or_subnets_is_tracked_with_neither(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given EKS answering with no status and no subnets (its model makes no output member required), for a
        # profile of someone else's
        answer = {"fargateProfileName": "theirs", "selectors": SELECTORS, "tags": {"owner": "team-b"}}
        with stubbed(monkeypatch, "fargate_app.teardown", "eks") as eks:
            eks.add_response(
                "describe_fargate_profile",
                {"fargateProfile": answer},
                {"clusterName": "blog", "fargateProfileName": "theirs"},
            )
            # When it is released
            release = release_fargate_profile(settings, event({"fargateProfile": recorded("theirs", False)}))
        # Then it is kept, tracked as EKS described it
        assert release.profile is not None
        assert (release.profile.status, release.profile.subnets, release.kept) == (
            "UNKNOWN",
            [],
            "the provision reused a profile this stack does not manage",
        )

    @pytest.mark.parametrize(
        ("provision", "operation", "call"),
        [
            ({"fargateProfile": recorded("fp-web", True)}, "DescribeFargateProfile", "describe Fargate profile fp-web"),
            (None, "ListFargateProfiles", "list the Fargate profiles of cluster blog"),
        ],
        ids=["describe", "list"],
    )
    def test_eks_refusing_to_show_the_profiles_names_the_call(
        self,
        settings: Settings,
        network: Network,
        monkeypatch: pytest.MonkeyPatch,
        provision: dict[str, Any] | None,
        operation: str,
        call: str,
    ) -> None:
        make_profile(network, "fp-web", {**OURS, CREATED_FOR_TAG: "fargate.demo-app"})
        eks = boto3.client("eks")
        fail_with(eks, operation, "ClientException", f"{operation} refused")
        monkeypatch.setattr("fargate_app.teardown.client", lambda service: eks)

        with pytest.raises(PermanentError) as refused:
            release_fargate_profile(settings, event(provision))

        assert str(refused.value) == f"{call}: ClientException: {operation} refused"
        assert status_of("fp-web") == "ACTIVE"

    def test_a_recorded_profile_already_gone_is_not_looked_for_elsewhere(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-other", {**OURS, CREATED_FOR_TAG: "fargate.demo-app"})

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-gone", True)}))

        assert (release.deleting, release.kept, profiles()) == (False, None, ["fp-other"])
        assert release.profile is not None and release.profile.name == "fp-gone"

    def test_without_a_record_the_profile_tagged_for_the_app_is_found(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-a", {**OURS, CREATED_FOR_TAG: "fargate.other-app"})
        make_profile(network, "fp-b", {**OURS, CREATED_FOR_TAG: "fargate.demo-app"})
        make_profile(network, "fp-c", {**OURS, CREATED_FOR_TAG: "other.demo-app"})

        release = release_fargate_profile(settings, event(None))

        assert release.deleting is True
        assert release.profile is not None and release.profile.name == "fp-b"
        assert profiles() == ["fp-a", "fp-c"]
        assert status_of("fp-a") == status_of("fp-c") == "ACTIVE"

    def test_without_a_record_or_a_tagged_profile_nothing_was_created(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-a", OURS)

        release = release_fargate_profile(settings, event(None))

        assert (release.profile, release.deleting, release.kept) == (None, False, "no profile was created")
        assert release.kept_resources == []
        assert status_of("fp-a") == "ACTIVE"


class TestTheProfileAnUpdateLeft:
    """An update whose labels changed runs on another profile: ReleasePreviousProfile names the one it left."""

    @staticmethod
    def left(name: str) -> ReleaseProfileEvent:
        return ReleaseProfileEvent.parse(
            {"request": walkthrough_request(), "profileName": name}, region="us-west-2", account="111122223333"
        )

    def test_a_profile_of_this_project_nothing_else_uses_is_deleted(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        # Given the profile the last good revision ran on, created for another app of the namespace, now unused
        make_profile(network, "fp-old", {**OURS, CREATED_FOR_TAG: "fargate.other-app"})
        make_profile(network, "fp-new", {**OURS, CREATED_FOR_TAG: "fargate.demo-app"})

        release = release_fargate_profile(settings, self.left("fp-old"))

        assert (release.deleting, release.kept, profiles()) == (True, None, ["fp-new"])
        assert release.profile is not None and (release.profile.name, release.profile.status) == ("fp-old", "DELETING")
        assert release.kept_resources == []  # the update keeps its role, rule and image: nothing to report

    def test_one_that_still_schedules_another_app_is_kept_naming_it(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-old", OURS)
        users.append("deployment fargate/other-app")

        release = release_fargate_profile(settings, self.left("fp-old"))

        assert (release.deleting, release.kept, status_of("fp-old")) == (
            False,
            "it still schedules deployment fargate/other-app",
            "ACTIVE",
        )

    def test_one_this_stack_does_not_manage_is_kept(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "theirs", {"owner": "team-b"})

        release = release_fargate_profile(settings, self.left("theirs"))

        assert (release.deleting, release.kept, status_of("theirs")) == (
            False,
            "this stack does not manage it",
            "ACTIVE",
        )
        assert release.kept_resources == [
            {"fargateProfile": "theirs", "reason": "this stack does not manage it", "holders": []}
        ]

    def test_one_already_gone_is_nothing_to_do(self, settings: Settings, network: Network, users: list[str]) -> None:
        make_profile(network, "fp-new", OURS)

        release = release_fargate_profile(settings, self.left("fp-gone"))

        assert (release.profile, release.deleting, release.kept, profiles()) == (None, False, None, ["fp-new"])


class TestWhenItIsKept:
    def test_a_profile_that_still_schedules_others_is_kept_naming_them(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-web", OURS)
        users += ["pod other/helm-app-7d9", "Deployment team-a/api"]

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        assert (release.deleting, status_of("fp-web")) == (False, "ACTIVE")
        assert release.kept == "it still schedules pod other/helm-app-7d9, Deployment team-a/api"
        assert release.profile is not None and release.profile.status == "ACTIVE"

    def test_a_profile_another_teardown_is_deleting_is_not_deleted_twice(
        self, settings: Settings, network: Network, users: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_profile(network, "fp-web", OURS, status="DELETING")
        calls: list[str] = []
        monkeypatch.setattr("fargate_app.teardown.delete_fargate_profile", lambda cluster, name: calls.append(name))

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        assert (release.deleting, calls) == (True, [])
        assert release.profile is not None and release.profile.status == "DELETING"


class TestSharedResourcesKept:
    def test_the_role_the_cache_rule_and_the_cached_repository_are_reported_kept_with_their_holders(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        # Given the app holds the role, the profile and the rule, and another app of the cluster the role and rule
        make_profile(network, "fp-web", OURS)
        users.append("Deployment team-a/api")
        app = "blog/fargate/demo-app"
        for resource in (
            "podExecutionRole/FargateAppPodExecution-blog",
            "cacheRule/ecr-public",
            "fargateProfile/blog/fp-web",
        ):
            take(settings, resource, app)
        for resource in ("podExecutionRole/FargateAppPodExecution-blog", "cacheRule/ecr-public"):
            take(settings, resource, "blog/team-a/api")
        provision = {
            "fargateProfile": recorded("fp-web", True),
            "podExecutionRole": {"arn": ROLE, "name": "FargateAppPodExecution-blog", "created": True},
            "cacheRule": {
                "ecrRepositoryPrefix": "ecr-public",
                "upstreamRegistryUrl": "public.ecr.aws",
                "created": True,
            },
            "image": {"cached": CACHED},
        }

        # When the app is torn down
        release = release_fargate_profile(settings, event(provision))

        # Then it lets go of all three and each is reported kept with why and who holds it now
        assert release.kept_resources == [
            {"fargateProfile": "fp-web", "reason": "it still schedules Deployment team-a/api", "holders": []},
            {
                "podExecutionRole": "FargateAppPodExecution-blog",
                "reason": "shared by the Fargate profiles of cluster blog; deleted with the stack's profiles",
                "holders": ["blog/team-a/api"],
            },
            {
                "cacheRule": "ecr-public",
                "reason": "shared by every image from public.ecr.aws",
                "holders": ["blog/team-a/api"],
            },
            {
                "cachedRepository": "ecr-public/nginx/nginx",
                "reason": "the pull-through cache keeps the image for the next pull",
            },
        ]

    def test_a_profile_another_app_holds_is_kept_though_the_cluster_shows_no_other_user(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        # Given another app's provision took the profile and has applied nothing yet (the cluster shows no user)
        make_profile(network, "fp-web", OURS)
        take(settings, "fargateProfile/blog/fp-web", "blog/fargate/demo-app")
        take(settings, "fargateProfile/blog/fp-web", "blog/fargate/web")

        # When this app is torn down
        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        # Then the profile stays, naming who holds it, and only that app holds it now
        assert (release.deleting, release.kept, status_of("fp-web")) == (False, "held by blog/fargate/web", "ACTIVE")
        assert release.kept_resources[0]["holders"] == ["blog/fargate/web"]
        # and when that app is torn down too, the last one out deletes it
        web = ReleaseProfileEvent.parse(
            {
                "request": {**walkthrough_request(), "app": "web"},
                "provision": {"fargateProfile": recorded("fp-web", False)},
            },
            region="us-west-2",
            account="111122223333",
        )
        assert release_fargate_profile(settings, web).deleting is True
        assert profiles() == []

    def test_a_profile_several_apps_hold_names_them_all(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-web", OURS)
        for app in ("blog/fargate/demo-app", "blog/fargate/web", "blog/fargate/api"):
            take(settings, "fargateProfile/blog/fp-web", app)

        release = release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))

        assert (release.deleting, release.kept) == (False, "held by blog/fargate/api, blog/fargate/web")

    def test_a_record_without_a_cache_rule_lets_go_of_the_requests_rule_by_its_prefix(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        # Given a provision recorded without its rule (it failed before EnsureCacheRule reported), and the app and
        # another holding the request's default rule
        make_profile(network, "fp-web", OURS)
        for app in ("blog/fargate/demo-app", "blog/fargate/web"):
            take(settings, "cacheRule/ecr-public", app)
        # When the app is torn down
        release_fargate_profile(settings, event({"fargateProfile": recorded("fp-web", True)}))
        # Then it no longer holds the rule; the other app still does
        assert let_go(settings, "cacheRule/ecr-public", "nobody") == ["blog/fargate/web"]

    def test_a_deleted_profile_is_not_among_what_is_kept(
        self, settings: Settings, network: Network, users: list[str]
    ) -> None:
        make_profile(network, "fp-web", OURS)
        provision = {
            "fargateProfile": recorded("fp-web", True),
            "podExecutionRole": {"arn": ROLE, "name": "FargateAppPodExecution-blog", "created": False},
        }

        release = release_fargate_profile(settings, event(provision))

        assert [next(iter(kept)) for kept in release.kept_resources] == ["podExecutionRole"]


def test_a_console_teardown_without_a_record_lets_go_of_the_clusters_role_and_the_requests_rule(
    settings: Settings, network: Network, users: list[str]
) -> None:
    # Given the app holds the cluster's role and its request's default rule, and no provision record is given
    app = "blog/fargate/demo-app"
    for resource in ("podExecutionRole/FargateAppPodExecution-blog", "cacheRule/ecr-public"):
        take(settings, resource, app)
        take(settings, resource, "blog/fargate/web")
    # When it is torn down from the console with the request alone
    release_fargate_profile(settings, event(None))
    # Then it holds neither any more (found by their names), and the other app still does
    assert let_go(settings, "podExecutionRole/FargateAppPodExecution-blog", "nobody") == ["blog/fargate/web"]
    assert let_go(settings, "cacheRule/ecr-public", "nobody") == ["blog/fargate/web"]
