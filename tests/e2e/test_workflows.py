"""Provision, teardown and warm-cache executed as in AWS: the walkthrough's scenario, a retry, a compensation,
a poll timeout, and the EventBridge start."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_calls import api_event, call_api, delete_app, post_app
from inventory_items import holders_of, inventory_item
from request_edits import walkthrough_request

from fargate_app.aws.iam import role_name, trust_policy
from fargate_app.aws.tags import MANAGED_BY_TAG
from fargate_app.config import MANAGED_BY, Settings
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("workflows")
ROOT = Path(__file__).resolve().parents[2]
WALKTHROUGH = walkthrough_request()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def collapse(states: list[str]) -> list[str]:
    """The state order with polling loops folded: each state once, where it first appears."""
    seen: list[str] = []
    for state in states:
        if state not in seen:
            seen.append(state)
    return seen


def run(workflows: Workflows, machine: str, payload: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    arn = workflows.start(machine, payload)
    outcome = workflows.wait(arn, timeout_s=timeout)
    outcome["states"] = workflows.state_order(arn)
    return outcome


def profiles(sandbox: Sandbox) -> dict[str, str]:
    return {p["fargateProfileName"]: p["status"] for p in sandbox.fargate_profiles("blog")}


SHARED_SELECTORS = [{"namespace": "*", "labels": {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}}]


def test_the_walkthrough_provisions_then_tears_down(
    sandbox: Sandbox, workflows: Workflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the cluster's profiles before (an earlier test's app may have made the shared one)
    before = profiles(sandbox)
    # and Fargate taking 15 s to start a pod and 15 s to stop one (a quarter of its start time, half the 30 s grace
    # period): more than a loaded machine takes from ApplyApp to the first CheckRollout and from DeleteApp to the first
    # CheckPodsGone (CI saw both exceed the module's 3.6 s), so each poll is seen waiting
    assert sandbox.kubernetes is not None
    controllers = sandbox.kubernetes.controllers
    slow = dataclasses.replace(controllers.timing, node_seconds=10.0, start_seconds=15.0, grace_scale=0.5)
    monkeypatch.setattr(controllers, "timing", slow)
    monkeypatch.setattr(controllers.scheduler, "timing", slow)
    # When the walkthrough's request is provisioned (the console's input: the request itself)
    outcome = run(workflows, "ProvisionStateMachine", WALKTHROUGH)
    # Then it succeeds with the result of docs/design.md §3
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    result = json.loads(outcome["output"])
    assert result["status"] == "SUCCEEDED" and result["executionArn"] == outcome["executionArn"]
    assert result["request"]["image"] == "public.ecr.aws/nginx/nginx:stable"
    assert result["podExecutionRole"]["arn"] == "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog"
    # the shared profile, created by this provision unless an earlier app's provision did
    created = result["fargateProfile"]["name"] not in before
    assert (result["fargateProfile"]["status"], result["fargateProfile"]["created"]) == ("ACTIVE", created)
    assert result["fargateProfile"]["selectors"] == SHARED_SELECTORS
    assert result["cacheRule"]["ecrRepositoryPrefix"] == "ecr-public"
    assert result["cacheRule"]["upstreamRegistryUrl"] == "public.ecr.aws"
    assert sandbox.upstreams is not None
    digest = sandbox.upstreams.digest("public.ecr.aws", "nginx/nginx", "stable")
    assert result["image"]["digest"] == digest and result["image"]["cached"].endswith(
        f"/ecr-public/nginx/nginx@{digest}"
    )
    assert result["image"]["platform"] == "linux/amd64"
    assert result["deployment"] == {
        **result["deployment"],
        "namespace": "fargate",
        "name": "demo-app",
        "replicas": 1,
        "readyReplicas": 1,
    }
    (pod,) = result["pods"]
    assert pod["phase"] == "Running" and pod["node"].startswith("fargate-ip-")
    assert result["ingress"] is None
    # in the walkthrough's order
    assert collapse(outcome["states"]) == [
        "ValidateRequest",
        "RecordProvisionStart",
        "EnsurePodExecutionRole",
        "EnsureFargateProfile",
        "CheckFargateProfile",
        "EnsureCacheRule",
        "WarmImageCache",
        "ApplyApp",
        "CheckRollout",
        "ReportResult",
        "LastGoodRevisionKnown",
        "RecordProvisionSucceeded",
    ]
    # and the app inventory records it RUNNING at this revision, its last good one, pinned to the cached digest
    item = inventory_item(sandbox, workflows, "blog/fargate/demo-app")
    assert {k: item[k] for k in ("appState", "executionStatus", "executionArn", "cachedImage", "kind")} == {
        "appState": "RUNNING",
        "executionStatus": "SUCCEEDED",
        "executionArn": outcome["executionArn"],
        "cachedImage": result["image"]["cached"],
        "kind": "provision",
    }
    assert item["lastGood"]["executionArn"] == outcome["executionArn"]
    assert json.loads(item["resultJson"]) == result
    # and the app holds the shared role, profile and cache rule it uses
    shared = [
        f"podExecutionRole/{result['podExecutionRole']['name']}",
        f"fargateProfile/blog/{result['fargateProfile']['name']}",
        f"cacheRule/{result['cacheRule']['ecrRepositoryPrefix']}",
    ]
    assert all("blog/fargate/demo-app" in holders_of(sandbox, workflows, resource) for resource in shared)
    # and the rollout was checked more than once (Fargate takes its time to start a pod), each check one retry of
    # the same state with the same input
    assert outcome["states"].count("CheckRollout") == 1
    checks = [i.error_type for i in workflows.invocations("CheckRolloutFunction")]
    assert len(checks) >= 2 and checks[-1] is None and set(checks[:-1]) == {"RolloutNotYetReady"}

    # When it is torn down with the provision's record
    teardown = run(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
    monkeypatch.undo()
    # Then the app, its pods and Fargate node, and the profile it created are gone
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    report = json.loads(teardown["output"])
    assert report["leftovers"] == []
    # and the inventory records the app TORN_DOWN, with no last good revision left to roll back to
    item = inventory_item(sandbox, workflows, "blog/fargate/demo-app")
    assert (item["appState"], item["kind"], item["executionStatus"]) == ("TORN_DOWN", "teardown", "SUCCEEDED")
    assert "lastGood" not in item and json.loads(item["resultJson"]) == report
    # and it holds none of them any more; the role and rule are kept, naming who holds them now
    assert [
        resource for resource in shared if "blog/fargate/demo-app" in holders_of(sandbox, workflows, resource)
    ] == []
    assert {next(iter(k)): k["holders"] for k in report["kept"] if "holders" in k}.keys() >= {
        "podExecutionRole",
        "cacheRule",
    }
    # pods are Terminating for their grace period: checked more than once
    assert [i.error_type for i in workflows.invocations("CheckPodsGoneFunction")][-2:] == ["PodsNotYetGone", None]
    # and the shared profile is deleted when no other app uses it, else kept naming what still uses it
    assert sandbox.kubernetes is not None
    others = [
        f"deployment {d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in sandbox.kubernetes.objects("Deployment")
        if d["spec"]["template"]["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile")
        == result["fargateProfile"]["name"]
    ]
    kept = [k for k in report["kept"] if "fargateProfile" in k]
    if others:
        assert report["fargateProfile"]["deleting"] is False and result["fargateProfile"]["name"] in profiles(sandbox)
        assert all(other in kept[0]["reason"] for other in others), (others, kept)
    else:
        assert report["fargateProfile"]["deleting"] is True and kept == []
        assert result["fargateProfile"]["name"] not in profiles(sandbox)
    assert sandbox.kubernetes.objects("Deployment", "fargate") == []
    assert [n for n in sandbox.kubernetes.objects("Node") if n["metadata"]["name"] == pod["node"]] == []


def test_a_console_teardown_without_the_provision_record_finds_the_profile_by_its_tag(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given an app provisioned with a subnet set of its own (so its own shared profile, tagged as created for it)
    request = {**WALKTHROUGH, "namespace": unique("console"), "subnets": [sandbox.seeds.network.private_subnets[0]]}
    provision = run(workflows, "ProvisionStateMachine", request)
    assert provision["status"] == "SUCCEEDED", provision.get("cause")
    profile = json.loads(provision["output"])["fargateProfile"]["name"]

    # When the teardown is started from the console with the request alone (docs/console-start.md: no "provision")
    teardown = run(workflows, "TeardownStateMachine", {"request": json.loads(provision["output"])["request"]})

    # Then it does not fail on the missing $.provision (States.Runtime in AWS): the profile is found and deleted
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    assert teardown["states"][:2] == ["ReadTeardownInput", "NoProvisionRecord"]
    assert json.loads(teardown["output"])["fargateProfile"]["deleting"] is True
    assert profile not in profiles(sandbox)


def _recorded_and_running(workflows: Workflows, request: dict[str, Any]) -> str:
    """A provision of ``request`` once it has recorded itself as the app's current execution, still running."""
    arn = workflows.start("ProvisionStateMachine", request)
    deadline = time.monotonic() + 60
    while "RecordProvisionStart" not in workflows.state_order(arn)[:-1]:  # entered and left
        assert time.monotonic() < deadline and workflows.describe(arn)["status"] == "RUNNING"
        time.sleep(0.05)
    return arn


def test_a_console_start_while_the_app_is_being_provisioned_is_refused(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given a provision of an app, recorded as the app's current execution and still running
    request = {**WALKTHROUGH, "namespace": unique("one-at-a-time")}
    key = f"blog/{request['namespace']}/{request['app']}"
    first = _recorded_and_running(workflows, request)
    # When a changed request for the same app is started from the console
    second = run(workflows, "ProvisionStateMachine", {**request, "replicas": 2})
    # Then it fails at ValidateRequest naming the running execution, before it records or creates anything
    assert (second["status"], second["error"]) == ("FAILED", "AppBusy"), second.get("cause")
    assert first.rsplit(":", 1)[-1] in second["cause"]
    assert "RecordProvisionStart" not in second["states"]
    # and the first ends as it would have alone, the app's item still its own
    outcome = workflows.wait(first, timeout_s=240)
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    item = inventory_item(sandbox, workflows, key)
    assert (item["executionArn"], item["revision"], item["appState"]) == (first, 1, "RUNNING")
    assert json.loads(item["requestJson"]).get("replicas", 1) == 1  # the refused request's 2 is nowhere
    result = json.loads(outcome["output"])
    teardown = run(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")


def test_a_console_teardown_while_the_app_is_being_provisioned_is_refused(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given a provision of an app, recorded as the app's current execution and still running
    request = {**WALKTHROUGH, "namespace": unique("teardown-waits")}
    provision = _recorded_and_running(workflows, request)
    # When the app is torn down from the console
    refused = run(workflows, "TeardownStateMachine", {"request": request})
    # Then the teardown fails at once with AppBusy naming the provision, before it records or deletes anything
    assert (refused["status"], refused["error"]) == ("FAILED", "AppBusy"), refused.get("cause")
    assert provision in refused["cause"] and "provision execution" in refused["cause"]
    assert "RecordTeardownStart" not in refused["states"] and "DeleteApp" not in refused["states"]
    # and the provision ends as it would have alone, the app's item still its own
    outcome = workflows.wait(provision, timeout_s=240)
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    item = inventory_item(sandbox, workflows, f"blog/{request['namespace']}/demo-app")
    assert (item["executionArn"], item["appState"]) == (provision, "RUNNING")
    result = json.loads(outcome["output"])
    teardown = run(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")


def test_a_console_teardown_after_a_stopped_provision_goes_ahead(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given a provision an administrator stopped once it had recorded itself (it never records its end)
    request = {**WALKTHROUGH, "namespace": unique("teardown-after-stop")}
    provision = _recorded_and_running(workflows, request)
    sandbox.boto3_client("stepfunctions").stop_execution(executionArn=provision)
    assert workflows.wait(provision, timeout_s=60)["status"] == "ABORTED"
    # When the app is torn down from the console
    teardown = run(workflows, "TeardownStateMachine", {"request": request})
    # Then Step Functions' word that it no longer runs lets the teardown through
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    assert "DescribeTheRecordedExecution" in teardown["states"]


def test_a_failed_console_update_applies_the_last_good_revision_again(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given an app provisioned from the console and running (a console start carries no last good revision: the
    # app's item has it)
    namespace = unique("console-update")
    request = {**WALKTHROUGH, "namespace": namespace}
    first = workflows.start("ProvisionStateMachine", request)
    assert workflows.wait(first, timeout_s=240)["status"] == "SUCCEEDED"
    # When a changed request is started from the console and Kubernetes refuses its Deployment (422 Invalid)
    sandbox.faults.fail_kubernetes(
        f"/apis/apps/v1/namespaces/{namespace}/deployments/demo-app", 1, 422, method="PATCH", reason="Invalid"
    )
    update = run(workflows, "ProvisionStateMachine", {**request, "cpu": "500m"})
    # Then the update fails with ApplyApp's error, rolled back to the first revision: nothing of the app is deleted
    assert (update["status"], update["error"]) == ("FAILED", "ManifestInvalid"), update.get("cause")
    cause = json.loads(update["cause"])
    assert cause["rolledBackTo"] == first.rsplit(":", 1)[-1], cause
    assert sandbox.kubernetes is not None
    [deployment] = [
        d for d in sandbox.kubernetes.objects("Deployment", namespace) if d["metadata"]["name"] == "demo-app"
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "250m"
    # and the app's item says it still runs its last good revision
    item = inventory_item(sandbox, workflows, f"blog/{namespace}/demo-app")
    assert (item["appState"], item["lastGood"]["executionArn"]) == ("RUNNING", first)
    assert json.loads(item["lastGood"]["resultJson"])["request"]["namespace"] == namespace
    result = json.loads(item["lastGood"]["resultJson"])
    teardown = run(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")


def test_a_console_start_after_an_api_one_is_the_apps_status_and_what_delete_tears_down(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given an app provisioned through the API (which notes the execution it started in the app's item)
    namespace = unique("api-then-console")
    request = {**WALKTHROUGH, "namespace": namespace}
    status, started = post_app(sandbox, workflows, request)
    assert status == 202, started
    assert workflows.wait(started["executionArn"], timeout_s=240)["status"] == "SUCCEEDED"
    # When a changed request is started from the console and runs
    console = workflows.start("ProvisionStateMachine", {**request, "replicas": 2})
    assert workflows.wait(console, timeout_s=240)["status"] == "SUCCEEDED"
    # Then the API reports the console's execution (its start record replaced the API's note), revision 2
    parameters = {"cluster": "blog", "namespace": namespace, "app": "demo-app"}
    path = f"/apps/blog/{namespace}/demo-app"
    status, app = call_api(sandbox, workflows, api_event("GET", path, None, parameters))
    assert (status, app["executionArn"], app["caller"], app["revision"]) == (200, console, "console", 2), app
    # and a DELETE tears down what the console's revision runs
    status, deleted = delete_app(sandbox, workflows, request)
    assert status == 202, deleted
    teardown = workflows.wait(deleted["executionArn"], timeout_s=240)
    assert teardown["status"] == "SUCCEEDED", teardown.get("cause")
    assert json.loads(teardown["input"])["request"]["replicas"] == 2


def test_a_busy_cluster_is_waited_out(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given EKS answers ResourceInUseException twice (another profile is CREATING on the cluster)
    namespace = unique("busy")
    message = "Cannot create Fargate Profile x because cluster blog currently has Fargate profile y in status CREATING"
    sandbox.faults.fail_aws("eks:CreateFargateProfile", 2, "ResourceInUseException", message, 409)
    # When the app is provisioned, with a subnet set of its own (so that it must create a profile)
    request = {**WALKTHROUGH, "namespace": namespace, "subnets": [sandbox.seeds.network.private_subnets[1]]}
    outcome = run(workflows, "ProvisionStateMachine", request)
    # Then the step was retried with backoff and the app runs
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    errors = [i.error_type for i in workflows.invocations("EnsureFargateProfileFunction")][-3:]
    assert errors == ["ProfileOperationInProgress", "ProfileOperationInProgress", None]
    # (torn down again: the next test of this subnet set must create its own profile)
    result = json.loads(outcome["output"])
    teardown = run(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
    assert teardown["status"] == "SUCCEEDED" and json.loads(teardown["output"])["fargateProfile"]["deleting"] is True


def test_a_missing_tag_compensates_what_the_execution_created(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given a role that already exists (an earlier provision made it) and a fresh namespace and cache prefix
    namespace, prefix = unique("missing"), unique("c")
    # (and a subnet set of its own: the shared profile of that set is this execution's to create and to undo)
    request = {
        **WALKTHROUGH,
        "namespace": namespace,
        "image": "public.ecr.aws/nginx/nginx:no-such-tag",
        "cachePrefix": prefix,
        "subnets": [sandbox.seeds.network.private_subnets[1]],
    }
    iam = sandbox.boto3_client("iam")
    settings = Settings.model_validate({"AWS_REGION": sandbox.region, "ACCOUNT_ID": sandbox.account_id})
    # the cluster's role, as an earlier provision leaves it (this test must not depend on one having run)
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(
            RoleName=role_name(settings, "blog"),
            AssumeRolePolicyDocument=json.dumps(trust_policy(settings, "blog")),
            Tags=[{"Key": MANAGED_BY_TAG, "Value": MANAGED_BY}],
        )
    # When the image cannot be found
    outcome = run(workflows, "ProvisionStateMachine", request)
    # Then the execution fails naming the step, after removing the profile and rule it created
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "ImageNotFound"
    cause = json.loads(outcome["cause"])
    assert cause["step"] == "WarmImageCache" and "no-such-tag" in cause["cause"]
    assert f"pull-through-cache rule {prefix}" in cause["compensated"]
    [undone] = [item for item in cause["compensated"] if item.startswith("Fargate profile fargate-app-shared-")]
    rules = sandbox.boto3_client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert prefix not in [r["ecrRepositoryPrefix"] for r in rules]
    assert profiles(sandbox).get(undone.removeprefix("Fargate profile "), "DELETING") == "DELETING"
    # and what it did not create is kept
    assert "FargateAppPodExecution-blog" in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert not any("IAM role" in item for item in cause["compensated"])
    assert collapse(outcome["states"])[-4:] == [
        "WarmImageCacheFailed",
        "Compensate",
        "RecordProvisionFailed",
        "ProvisionFailed",
    ]
    # and the inventory records the first provision FAILED with the report the execution fails with
    item = inventory_item(sandbox, workflows, f"blog/{namespace}/demo-app")
    assert (item["appState"], item["executionStatus"], item["revision"]) == ("FAILED", "FAILED", 1)
    assert item["failure"] == {"error": "ImageNotFound", "cause": outcome["cause"]}
    assert "lastGood" not in item


def test_a_profile_that_never_becomes_active_ends_in_poll_timeout(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given profiles take far longer to create than PROFILE_WAIT_TIMEOUT_SECONDS (6 s here)
    sandbox.profiles.create_seconds = 12.0
    try:
        # a subnet set of its own, so that it needs a new (shared) profile
        request = {**WALKTHROUGH, "namespace": unique("slow"), "subnets": [sandbox.seeds.network.private_subnets[0]]}
        outcome = run(workflows, "ProvisionStateMachine", request, timeout=120)
    finally:
        sandbox.profiles.create_seconds = 2.0
    # Then the loop ends with PollTimeout and the CREATING profile is removed once EKS allows it
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "PollTimeout"
    assert json.loads(outcome["cause"])["step"] == "CheckFargateProfile"
    # after the state's Retry polled: every earlier check answered "not yet" (one state, no Wait/Choice loop)
    checks = [i.error_type for i in workflows.invocations("CheckFargateProfileFunction")]
    assert checks[-4:] == ["ProfileNotYetActive"] * 3 + ["PollTimeout"]
    assert outcome["states"].count("CheckFargateProfile") == 1


def test_a_new_cache_rule_warms_the_watch_list(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given the template's watch list (registry.k8s.io: pause:3.10), when a rule for registry.k8s.io is created
    prefix = unique("k8s")
    earlier = set(workflows.executions())  # provisions create rules too, and each starts this workflow
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.k8s.io"
    )
    # Then EventBridge starts the warm-cache workflow, which pulls the watched image through the new rule
    warm_machine = workflows.state_machine_arns["WarmCacheStateMachine"].split(":")[-1]
    started: list[str] = []
    deadline = time.monotonic() + 10  # EventBridge delivers after the API call has answered
    while not started and time.monotonic() < deadline:
        started = [a for a in workflows.executions() if f":{warm_machine}:" in a and a not in earlier]
        time.sleep(0.05)
    (arn,) = started
    outcome = workflows.wait(arn, timeout_s=60)
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    report = json.loads(outcome["output"])
    assert report["cacheRule"]["ecrRepositoryPrefix"] == prefix
    assert sandbox.upstreams is not None
    digest = sandbox.upstreams.digest("registry.k8s.io", "pause", "3.10")
    assert report["images"] == [
        {
            "image": "registry.k8s.io/pause:3.10",
            "warmed": True,
            "digest": digest,
            "cached": f"{sandbox.registry_url.removeprefix('http://')}/{prefix}/pause@{digest}",
        }
    ]


@pytest.mark.parametrize("example", ["chainguard.json", "ecr-to-ecr.json"])
def test_the_examples_of_the_new_upstreams_provision(sandbox: Sandbox, workflows: Workflows, example: str) -> None:
    # Given the README's example for Chainguard (a pull token) or another ECR registry of the account (IAM, no secret)
    request = json.loads((ROOT / "examples" / example).read_text())
    request["namespace"] = unique("upstream")
    if "credentialArn" in request:  # the seeded secret's full ARN (the example names it without its suffix)
        request["credentialArn"] = sandbox.seeds.secret_arns["ecr-pullthroughcache/chainguard"]
    # When it is provisioned
    outcome = run(workflows, "ProvisionStateMachine", request)
    # Then the image came through a rule for that upstream and runs pinned to the upstream's digest
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    result = json.loads(outcome["output"])
    reference = request["image"]
    host, _, rest = reference.partition("/")
    repository, _, tag = rest.partition(":")
    assert sandbox.upstreams is not None
    assert result["cacheRule"]["upstreamRegistryUrl"] == host
    assert result["image"]["digest"] == sandbox.upstreams.digest(host, repository, tag)
