"""Compensate: a failed provision removes, newest first, only what it created, and keeps what others now use."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from request_edits import walkthrough_request
from unit_support import Network, fill_cluster, holders_of

from fargate_app import holders
from fargate_app.aws.eks import ensure_fargate_profile
from fargate_app.aws.iam import ensure_pod_execution_role
from fargate_app.compensate import compensate, failure_message, parse_failed_state
from fargate_app.config import Settings
from fargate_app.errors import AccessDenied
from fargate_app.holders import take
from fargate_app.models import parse_request

pytestmark = pytest.mark.usefixtures("aws_iam")
REQUEST = walkthrough_request()


@pytest.fixture
def other_apps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which other managed apps the Kubernetes API reports on the profile (none unless a test adds some)."""
    users: list[str] = []
    monkeypatch.setattr("fargate_app.kube.usage.profile_users", lambda *args, **kwargs: list(users))
    return users


EXECUTION = "arn:aws:states:us-west-2:111122223333:execution:provision:x"


def failed_state(settings: Settings, step: str, **created: Any) -> dict[str, Any]:
    """The provision state when ``step`` failed after the role and profile steps ran (moto makes them real)."""
    request = parse_request(REQUEST)
    role = ensure_pod_execution_role(settings, "blog", "ecr-public", EXECUTION, holder=request.holder)
    profile = ensure_fargate_profile(settings, request, role.arn, holder=request.holder)
    cause = json.dumps(
        {"errorMessage": "image public.ecr.aws/nginx/nginx:stable not found", "errorType": "ImageNotFound"}
    )
    return {
        "request": request.to_json(),
        "executionArn": EXECUTION,
        "podExecutionRole": {**role.to_json(), **created.get("role", {})},
        "fargateProfile": {**profile.to_json(), **created.get("profile", {})},
        "failedStep": step,
        "error": {"Error": "ImageNotFound", "Cause": cause},
    }


def test_removes_the_profile_and_role_it_created(settings: Settings, cluster: str, other_apps: list[str]) -> None:
    # Given WarmImageCache failed after this execution created the role and the profile
    state = failed_state(settings, "WarmImageCache")
    # When compensating
    result = compensate(settings, state)
    # Then both are gone, newest first, and the failure is reported with the step and the human cause
    assert result.compensated == [
        f"Fargate profile {state['fargateProfile']['name']}",
        "IAM role FargateAppPodExecution-blog",
    ]
    assert result.leftovers == []
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == []
    assert "FargateAppPodExecution-blog" not in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
    assert result.error == "ImageNotFound"
    assert json.loads(result.cause) == {
        "step": "WarmImageCache",
        "error": "ImageNotFound",
        "cause": "image public.ecr.aws/nginx/nginx:stable not found",
        "compensated": result.compensated,
        "leftovers": [],
        "kept": [],
        "rolledBackTo": None,
        "compensationFailed": False,
    }


def test_an_undo_that_fails_for_good_is_listed_and_the_steps_error_kept(
    settings: Settings, cluster: str, other_apps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the profile cannot be deleted (the role lacks the grant), after WarmImageCache failed
    state = failed_state(settings, "WarmImageCache")

    def refused(cluster: str, name: str) -> bool:
        raise AccessDenied(
            f"delete Fargate profile {name}: User: … is not authorized to perform: eks:DeleteFargateProfile"
        )

    monkeypatch.setattr("fargate_app.compensate.delete_fargate_profile", refused)
    # When compensating
    result = compensate(settings, state)
    # Then the report is still WarmImageCache's error; the profile is listed as left, and the role (newer undo
    # after it) was still handled
    cause = json.loads(result.cause)
    assert (result.error, cause["step"], cause["compensationFailed"]) == ("ImageNotFound", "WarmImageCache", True)
    (left,) = [item for item in result.leftovers if item.startswith("Fargate profile")]
    assert "could not be undone: delete Fargate profile" in left and "eks:DeleteFargateProfile" in left


def test_when_compensation_ran_out_of_retries_the_report_keeps_the_steps_error(
    settings: Settings, cluster: str
) -> None:
    # Given the state machine's retries of Compensate ran out (the report-only call)
    state = failed_state(settings, "WarmImageCache")
    # When reporting
    result = compensate(settings, state, failed_before="ProfileOperationInProgress")
    # Then nothing is deleted; the error is the step's, and what the execution created is named as left behind
    cause = json.loads(result.cause)
    assert (result.error, cause["step"], cause["compensationFailed"]) == ("ImageNotFound", "WarmImageCache", True)
    assert result.compensated == []
    assert result.leftovers == [
        f"Fargate profile {state['fargateProfile']['name']} (not undone: ProfileOperationInProgress)",
        "IAM role FargateAppPodExecution-blog (not undone: ProfileOperationInProgress)",
    ]


def test_a_report_after_the_apply_names_every_kind_of_thing_left(settings: Settings, cluster: str) -> None:
    # Given the retries ran out for a failure at CheckRollout, after this execution created a cache rule too
    state = failed_state(settings, "CheckRollout")
    state["cacheRule"] = {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "public.ecr.aws", "created": True}
    # When reporting
    result = compensate(settings, state, failed_before="KubernetesUnavailable")
    # Then the app's objects, the rule, the profile and the role are named, newest first
    assert result.leftovers == [
        "the objects of app fargate/demo-app (not undone: KubernetesUnavailable)",
        "pull-through-cache rule ecr-public (not undone: KubernetesUnavailable)",
        f"Fargate profile {state['fargateProfile']['name']} (not undone: KubernetesUnavailable)",
        "IAM role FargateAppPodExecution-blog (not undone: KubernetesUnavailable)",
    ]


def test_a_report_names_only_what_the_execution_created(settings: Settings, cluster: str) -> None:
    # Given a failure at WarmImageCache that reused the rule, the profile and the role
    state = failed_state(settings, "WarmImageCache", role={"created": False}, profile={"created": False})
    state["cacheRule"] = {
        "ecrRepositoryPrefix": "ecr-public",
        "upstreamRegistryUrl": "public.ecr.aws",
        "created": False,
    }
    # When reporting, then nothing is named as left behind
    assert compensate(settings, state, failed_before="AwsThrottled").leftovers == []


def test_compensating_on_a_cluster_that_does_not_exist_succeeds(
    settings: Settings, cluster: str, other_apps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given ApplyApp failed for a cluster that does not exist (deleted meanwhile): nothing of the app can be left
    state = failed_state(settings, "ApplyApp")
    state["request"]["cluster"] = "gone"
    state["fargateProfile"]["cluster"] = "gone"
    eks = boto3.client("eks")

    def no_such_cluster(**_: Any) -> tuple[Any, dict[str, Any]]:
        # EKS's answer (moto raises a KeyError for an unknown cluster here)
        error = {"Code": "ResourceNotFoundException", "Message": "No cluster found for name: gone."}
        return type("Http", (), {"status_code": 404})(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 404}}

    eks.meta.events.register("before-call.eks.ListFargateProfiles", no_such_cluster)
    monkeypatch.setattr(
        "fargate_app.compensate.client", lambda service: eks if service == "eks" else boto3.client(service)
    )
    result = compensate(settings, state)
    cause = json.loads(result.cause)
    assert cause["compensationFailed"] is False, result.leftovers


def test_keeps_the_role_another_app_took_since(settings: Settings, cluster: str, other_apps: list[str]) -> None:
    # Given this execution created the role, then a concurrent provision of another app on the cluster took it (and
    # may be waiting to create its profile with it: EKS allows one profile operation at a time)
    state = failed_state(settings, "WarmImageCache")
    other = "arn:aws:states:us-west-2:111122223333:execution:provision:concurrent-one"
    ensure_pod_execution_role(settings, "blog", "quay", other, holder="blog/fargate/web")
    # When this execution compensates
    result = compensate(settings, state)
    # Then its profile goes but the role stays, naming who holds it, and the failed app holds nothing
    assert result.compensated == [f"Fargate profile {state['fargateProfile']['name']}"]
    assert result.leftovers == []  # nothing that should be gone is left: the role is kept on purpose
    assert result.kept == ["IAM role FargateAppPodExecution-blog (kept: held by blog/fargate/web)"]
    assert "FargateAppPodExecution-blog" in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
    assert holders_of("podExecutionRole/FargateAppPodExecution-blog") == ["blog/fargate/web"]
    assert holders_of(f"fargateProfile/blog/{state['fargateProfile']['name']}") == []


def test_keeps_what_it_did_not_create(settings: Settings, cluster: str, other_apps: list[str]) -> None:
    state = failed_state(settings, "WarmImageCache", role={"created": False}, profile={"created": False})
    result = compensate(settings, state)
    assert result.compensated == []
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] != []


def test_keeps_a_profile_another_app_now_uses_and_so_its_role(
    settings: Settings, cluster: str, other_apps: list[str]
) -> None:
    other_apps.append("fargate/other-app")
    state = failed_state(settings, "EnsureCacheRule")
    result = compensate(settings, state)
    assert result.compensated == [] and result.leftovers == []
    assert result.kept[0].endswith("(kept: it schedules fargate/other-app)")
    profile = state["fargateProfile"]["name"]
    assert result.kept[1] == f"IAM role FargateAppPodExecution-blog (kept: profiles {profile} use it)"
    assert json.loads(result.cause)["kept"] == result.kept


def test_a_failed_validation_created_nothing(settings: Settings) -> None:
    raw = {
        "cluster": "blog",
        "app": "Bad_App",
        "failedStep": "ValidateRequest",
        "error": {"Error": "InvalidRequest", "Cause": json.dumps({"errorMessage": "app: must be a DNS-1123 label"})},
    }
    result = compensate(settings, raw)
    assert (result.error, result.compensated, result.leftovers) == ("InvalidRequest", [], [])
    assert json.loads(result.cause)["cause"] == "app: must be a DNS-1123 label"


def test_handler_reads_the_state(
    handler: Any, lambda_context: Any, settings: Settings, cluster: str, other_apps: list[str]
) -> None:
    state = failed_state(settings, "CheckFargateProfile")
    answer = handler("compensate").lambda_handler({"state": state}, lambda_context)
    assert answer["error"] == "ImageNotFound" and len(answer["compensated"]) == 2


def another_app_takes(settings: Settings, request: dict[str, Any], rule: str | None, profile: str | None) -> str:
    """Another app's provision took the rule and the profile (as its ensure steps do) and has applied nothing yet:
    the cluster does not show it."""
    holder = parse_request(request).holder
    if rule is not None:
        take(settings, f"cacheRule/{rule}", holder)
    if profile is not None:
        take(settings, f"fargateProfile/{request['cluster']}/{profile}", holder)
    return holder


def with_created_rule(state: dict[str, Any]) -> dict[str, Any]:
    """The state when this execution also created the default pull-through-cache rule for public.ecr.aws."""
    rule = {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "public.ecr.aws", "created": True}
    return {**state, "cacheRule": rule}


@pytest.fixture
def deleted_rules(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """DeletePullThroughCacheRule, recorded (moto has no pull-through-cache rules)."""
    deleted: list[str] = []
    monkeypatch.setattr("fargate_app.compensate.delete_cache_rule", lambda prefix: deleted.append(prefix) or True)
    return deleted


def test_keeps_the_rule_and_profile_another_app_took_meanwhile(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    # Given WarmImageCache failed after this execution created the profile and the rule, while another app's
    # provision of the same upstream and cluster took both (it has applied nothing yet: the cluster does not show it)
    state = with_created_rule(failed_state(settings, "WarmImageCache"))
    profile = state["fargateProfile"]["name"]
    web = another_app_takes(settings, {**REQUEST, "app": "web"}, "ecr-public", profile)
    # When compensating
    result = compensate(settings, state)
    # Then the rule and the profile stay, naming who holds them, and so does the role the profile uses
    assert result.kept == [
        f"pull-through-cache rule ecr-public (kept: held by {web})",
        f"Fargate profile {profile} (kept: held by {web})",
        f"IAM role FargateAppPodExecution-blog (kept: profiles {profile} use it)",
    ]
    assert result.compensated == []
    assert deleted_rules == []
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == [profile]
    # and the failed app let go of all three
    assert holders_of("cacheRule/ecr-public") == holders_of(f"fargateProfile/blog/{profile}") == [web]
    assert holders_of("podExecutionRole/FargateAppPodExecution-blog") == []


def test_another_apps_hold_on_other_resources_keeps_nothing(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    # Given the same failure, while an app of another cluster holds another upstream's rule (quay.io)
    state = with_created_rule(failed_state(settings, "WarmImageCache"))
    another_app_takes(
        settings, {**REQUEST, "cluster": "other", "image": "quay.io/prometheus/busybox:latest"}, "quay", None
    )
    # When compensating
    result = compensate(settings, state)
    # Then everything this execution created is deleted
    assert result.kept == []
    assert "pull-through-cache rule ecr-public" in result.compensated
    assert deleted_rules == ["ecr-public"]


def test_a_retried_compensation_goes_on_with_the_claim_its_first_attempt_made(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    # Given the same failure, and a first attempt of this compensation that claimed the rule for deletion and then
    # timed out before it deleted it (the claim is fresh: no other release may take it over yet)
    state = with_created_rule(failed_state(settings, "WarmImageCache"))
    assert holders._claim(settings, "cacheRule/ecr-public", EXECUTION) is None
    # When the compensation is retried
    result = compensate(settings, state)
    # Then it recognises its own claim (by the execution) and deletes the rule
    assert "pull-through-cache rule ecr-public" in result.compensated
    assert deleted_rules == ["ecr-public"]


def test_a_take_between_the_release_and_the_delete_keeps_the_rule(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same failure, and another app whose EnsureCacheRule takes the rule just after this execution let go
    # of it (its set was empty at that moment)
    state = with_created_rule(failed_state(settings, "WarmImageCache"))
    released = holders.release

    def release_then_another_takes(settings: Settings, resource: str, holder: str) -> list[str]:
        left = released(settings, resource, holder)
        if resource == "cacheRule/ecr-public":
            take(settings, resource, "other/fargate/web")
        return left

    monkeypatch.setattr(holders, "release", release_then_another_takes)
    # When compensating
    result = compensate(settings, state)
    # Then the rule stays (the claim for deletion needs an empty set at that moment), naming who took it
    assert "pull-through-cache rule ecr-public (kept: held by other/fargate/web)" in result.kept
    assert deleted_rules == []


@pytest.mark.parametrize(
    ("cause", "sentence"),
    [
        pytest.param(
            json.dumps({"errorMessage": "the image is gone", "errorType": "X"}), "the image is gone", id="lambda"
        ),
        pytest.param("Lambda.Unknown: no payload", "Lambda.Unknown: no payload", id="not-json"),
        pytest.param(json.dumps({"detail": "other"}), json.dumps({"detail": "other"}), id="json-without-message"),
        pytest.param(json.dumps(["errorMessage"]), json.dumps(["errorMessage"]), id="json-list"),
        pytest.param({"Error": "X"}, json.dumps({"Error": "X"}), id="not-a-string"),
        pytest.param("c" * 1500, "c" * 999 + "…", id="long-text"),
        pytest.param(json.dumps({"errorMessage": "m" * 1500}), "m" * 999 + "…", id="long-message"),
        pytest.param({"k": "v" * 1500}, json.dumps({"k": "v" * 1500})[:999] + "…", id="long-object"),
    ],
)
def test_the_failure_is_told_in_the_lambda_errors_own_words(cause: Any, sentence: str) -> None:
    assert failure_message(cause) == sentence


def test_a_state_compensate_cannot_read_is_reported_and_nothing_is_deleted(settings: Settings) -> None:
    # Given what a failure before any validated request leaves: no request, no error details
    result = compensate(settings, {"cluster": "blog"})
    # Then the report says what it knows: an unknown step's task failure, nothing compensated or left
    report = json.loads(result.cause)
    assert (result.error, report["step"], report["error"], report["cause"]) == (
        "States.TaskFailed",
        "unknown",
        "States.TaskFailed",
        "",
    )
    assert (result.compensated, result.leftovers, result.kept, report["compensationFailed"]) == ([], [], [], False)
    assert parse_failed_state({"failedStep": "ApplyApp", "error": None}).error == {}


def test_a_state_with_an_unreadable_request_still_names_its_step_and_error() -> None:
    # Given a failed state whose request does not validate (as no step after ValidateRequest can leave one)
    state = {"request": {"app": "Bad_App"}, "failedStep": "ApplyApp", "error": {"Error": "X", "Cause": "c"}}
    failed = parse_failed_state(state)
    # Then what it knows is kept, and nothing is to be undone
    assert (failed.failed_step, failed.error, failed.request) == ("ApplyApp", {"Error": "X", "Cause": "c"}, None)
    assert parse_failed_state({"request": {"app": "Bad_App"}}).failed_step == "unknown"


def failed_update(settings: Settings, *, rule_prefix: str, profile_name: str | None) -> dict[str, Any]:
    """A failed update of the app (WarmImageCache) whose last good revision held ``rule_prefix`` and the profile
    ``profile_name`` (None: this update's own); the update took the rule and profile it resolved, as its steps do."""
    state = with_created_rule(failed_state(settings, "WarmImageCache"))
    state["cacheRule"]["created"] = False
    holder = parse_request(REQUEST).holder
    take(settings, "cacheRule/ecr-public", holder)
    profile = profile_name or state["fargateProfile"]["name"]
    state["previous"] = {
        "executionArn": f"{EXECUTION}-v1",
        "cacheRulePrefix": rule_prefix,
        "fargateProfileName": profile,
    }
    return state


def test_a_failed_update_keeps_what_its_last_good_revision_holds(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    # Given an update that failed on the same rule and profile as the revision still running
    state = failed_update(settings, rule_prefix="ecr-public", profile_name=None)
    profile = state["fargateProfile"]["name"]
    # When compensating, then nothing is let go of or deleted: the running revision needs all of it
    result = compensate(settings, state)
    assert (result.compensated, result.kept, result.leftovers, deleted_rules) == ([], [], [], [])
    holder = parse_request(REQUEST).holder
    assert holders_of("cacheRule/ecr-public") == holders_of(f"fargateProfile/blog/{profile}") == [holder]
    assert holders_of("podExecutionRole/FargateAppPodExecution-blog") == [holder]
    assert boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"] == [profile]


def test_a_failed_update_lets_go_of_the_rule_and_profile_it_moved_to(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    # Given an update that moved the app to another rule and profile, then failed
    state = failed_update(settings, rule_prefix="quay", profile_name="fargate-app-old")
    profile = state["fargateProfile"]["name"]
    # When compensating, then it lets go of both; the profile it created goes, the rule it reused stays
    result = compensate(settings, state)
    assert result.compensated == [f"Fargate profile {profile}"]
    assert (result.kept, deleted_rules) == ([], [])
    assert holders_of("cacheRule/ecr-public") == holders_of(f"fargateProfile/blog/{profile}") == []
    # and the role, which the running revision's profile still uses, is kept held
    assert holders_of("podExecutionRole/FargateAppPodExecution-blog") == [parse_request(REQUEST).holder]


def test_the_role_goes_with_its_profile_while_eks_still_lists_that_profile_as_deleting(
    settings: Settings, cluster: str, other_apps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given EKS lists a profile while it is DELETING (moto drops it at once): the delete only marks it
    deleting: list[str] = []
    monkeypatch.setattr("fargate_app.compensate.delete_fargate_profile", lambda cluster, name: deleting.append(name))
    state = failed_state(settings, "WarmImageCache")
    # When compensating, then the role is deleted: the profile being deleted is its only user
    result = compensate(settings, state)
    assert deleting == [state["fargateProfile"]["name"]]
    assert result.compensated == [f"Fargate profile {deleting[0]}", "IAM role FargateAppPodExecution-blog"]


def test_a_profile_of_the_cluster_with_another_role_does_not_keep_the_role(
    settings: Settings, cluster: str, other_apps: list[str]
) -> None:
    # Given another profile on the cluster, made with another role
    state = failed_state(settings, "WarmImageCache")
    subnets = boto3.client("eks").describe_cluster(name="blog")["cluster"]["resourcesVpcConfig"]["subnetIds"]
    boto3.client("eks").create_fargate_profile(
        fargateProfileName="someone-else",
        clusterName="blog",
        podExecutionRoleArn="arn:aws:iam::111122223333:role/SomeoneElsesRole",
        subnets=subnets,
        selectors=[{"namespace": "batch"}],
    )
    # When compensating, then the role this execution made is deleted all the same
    assert "IAM role FargateAppPodExecution-blog" in compensate(settings, state).compensated


def test_what_several_apps_hold_names_them_all(
    settings: Settings, cluster: str, other_apps: list[str], deleted_rules: list[str]
) -> None:
    state = with_created_rule(failed_state(settings, "WarmImageCache", role={"created": False}))
    profile = state["fargateProfile"]["name"]
    web = another_app_takes(settings, {**REQUEST, "app": "web"}, "ecr-public", profile)
    api = another_app_takes(settings, {**REQUEST, "app": "api"}, "ecr-public", profile)
    result = compensate(settings, state)
    assert result.kept == [
        f"pull-through-cache rule ecr-public (kept: held by {api}, {web})",
        f"Fargate profile {profile} (kept: held by {api}, {web})",
    ]
    # and the role it reused is let go of
    assert holders_of("podExecutionRole/FargateAppPodExecution-blog") == []


def test_a_profile_several_apps_run_on_names_them_all(
    settings: Settings, cluster: str, network: Network, other_apps: list[str]
) -> None:
    # Given the app's profile kept for two other apps, and someone else's profile using the same role
    other_apps.extend(["fargate/a", "fargate/b"])
    state = failed_state(settings, "WarmImageCache")
    fill_cluster(network, 1)
    result = compensate(settings, state)
    assert result.kept[0].endswith("(kept: it schedules fargate/a, fargate/b)")
    users = boto3.client("eks").list_fargate_profiles(clusterName="blog")["fargateProfileNames"]
    assert sorted(users) == sorted([state["fargateProfile"]["name"], "theirs-0"])
    assert result.kept[1] == f"IAM role FargateAppPodExecution-blog (kept: profiles {', '.join(users)} use it)"


def test_a_role_several_apps_hold_names_them_all(settings: Settings, cluster: str, other_apps: list[str]) -> None:
    # Given the role this execution created, taken since by two other apps of the cluster
    state = failed_state(settings, "WarmImageCache")
    web = another_app_takes(settings, {**REQUEST, "app": "web"}, None, None)
    api = another_app_takes(settings, {**REQUEST, "app": "api"}, None, None)
    take(settings, "podExecutionRole/FargateAppPodExecution-blog", web)
    take(settings, "podExecutionRole/FargateAppPodExecution-blog", api)
    # When compensating, then the profile goes and the role stays, naming both holders
    result = compensate(settings, state)
    assert result.compensated == [f"Fargate profile {state['fargateProfile']['name']}"]
    assert result.kept == [f"IAM role FargateAppPodExecution-blog (kept: held by {api}, {web})"]


def test_a_role_several_profiles_use_names_them_all(settings: Settings, cluster: str, other_apps: list[str]) -> None:
    # Given two other profiles of the cluster made with the role this execution created
    state = failed_state(settings, "WarmImageCache")
    eks = boto3.client("eks")
    subnets = eks.describe_cluster(name="blog")["cluster"]["resourcesVpcConfig"]["subnetIds"]
    for name in ("batch-a", "batch-b"):
        eks.create_fargate_profile(
            fargateProfileName=name,
            clusterName="blog",
            podExecutionRoleArn=state["podExecutionRole"]["arn"],
            subnets=subnets,
            selectors=[{"namespace": name}],
        )
    # When compensating, then the role is kept, naming every profile that uses it
    result = compensate(settings, state)
    assert result.kept == ["IAM role FargateAppPodExecution-blog (kept: profiles batch-a, batch-b use it)"]


def test_eks_refusing_to_list_the_profiles_leaves_the_role_naming_the_call(
    settings: Settings, cluster: str, other_apps: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given EKS refuses ListFargateProfiles when compensation asks which profiles use the role
    state = failed_state(settings, "WarmImageCache")
    eks = boto3.client("eks")

    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "ListFargateProfiles")

    monkeypatch.setattr(eks, "list_fargate_profiles", refused)
    monkeypatch.setattr("fargate_app.compensate.client", lambda service: {"eks": eks}[service])
    # When compensating, then the role is left, the refusal naming the call
    result = compensate(settings, state)
    (left,) = [item for item in result.leftovers if item.startswith("IAM role")]
    assert "could not be undone: list the Fargate profiles of cluster blog: not allowed" in left
