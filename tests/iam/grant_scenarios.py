"""The paths through the stack that, together, make every call its grants allow: each scenario is something a user
does (or a fault the stack must clean up after) and states how it must end.

A scenario raises ``ScenarioFailed`` when it does not end as stated, with the execution's error and cause (an
AccessDenied or Forbidden names the call the grants did not allow). Each one creates the names it uses, and
``Scenario.prepare`` gives every run the same start (nothing running, an account that never ran the stack): which
calls a scenario makes must not depend on the scenarios run before it, or a grant's removal tested with it could go
unnoticed (a role left by an earlier scenario is tagged where this one would have created it).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inventory_items import no_app_holds_anything

from fargate_sandbox.iam_requests import SERVICE_LINKED_ROLES
from fargate_sandbox.seeds import UPSTREAM_CREDENTIALS
from fargate_sandbox.session import SandboxSession

CLUSTER = "blog"
POD_ROLE = "FargateAppPodExecution-blog"
IMAGE = "public.ecr.aws/nginx/nginx:stable"
WAIT_SECONDS = 120
POD_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "eks-fargate-pods.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


# How a refusal reads in an execution's error and cause: IAM's AccessDenied(Exception) (the stack's AccessDenied,
# Step Functions' Lambda.AWSLambdaException for an Invoke its role may not make) and Kubernetes' Forbidden.
REFUSALS = ("AccessDenied", "Forbidden")


class ScenarioFailed(AssertionError):
    """A scenario did not end as it states; the message has the execution's error and cause."""


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[SandboxSession], None]

    def play(self, session: SandboxSession) -> None:
        """Run the scenario and wait for what it set off: the warm-cache executions EventBridge starts for the rules
        it creates run on after it ends. Their calls are the scenario's (recorded with it whatever the machine's
        speed), and a refusal in them fails it: the account's owner would find a failed execution.

        Raises:
            ScenarioFailed: the scenario did not end as it states, or an event or execution it set off was refused.
        """
        earlier = set(session.workflows.executions())
        events = session.sandbox.events
        delivered = len(events.deliveries)
        self.run(session)
        if not events.wait_delivered(timeout_s=WAIT_SECONDS):
            raise ScenarioFailed(f"{self.name}: events still undelivered after {WAIT_SECONDS} s")
        for delivery in events.deliveries[delivered:]:
            if delivery.error:
                raise ScenarioFailed(f"EventBridge rule {delivery.rule} could not start its target: {delivery.error}")
        machines = {arn.split(":")[-1]: name for name, arn in session.workflows.state_machine_arns.items()}
        for arn in [arn for arn in session.workflows.executions() if arn not in earlier]:
            outcome = session.workflows.wait(arn, timeout_s=WAIT_SECONDS)
            told = f"{outcome.get('error')}: {outcome.get('cause')}"
            if outcome["status"] == "FAILED" and any(word in told for word in REFUSALS):
                machine = machines.get(arn.split(":")[-2], arn)
                raise ScenarioFailed(f"{machine}: a run set off by {self.name} was refused: {told}")

    def prepare(self, session: SandboxSession) -> None:
        """The start every run of a scenario has, made as the administrator: no execution still running (the
        warm-cache runs EventBridge started for an earlier scenario's rules) and a fresh account."""
        settle(session)
        fresh_account(session)

    def __str__(self) -> str:
        return self.name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def request(namespace: str, **fields: Any) -> dict[str, Any]:
    return {"cluster": CLUSTER, "namespace": namespace, "app": unique("app"), "image": IMAGE, **fields}


def execute(session: SandboxSession, machine: str, payload: Any, error: str | None = None) -> dict[str, Any]:
    """Run one execution to its end: its output when it SUCCEEDED (``error`` None), its cause when it FAILED with
    ``error``. Raises: ScenarioFailed otherwise."""
    arn = session.workflows.start(machine, payload)
    return finished(session, machine, arn, error)


def finished(session: SandboxSession, machine: str, arn: str, error: str | None = None) -> dict[str, Any]:
    outcome = session.workflows.wait(arn, timeout_s=WAIT_SECONDS)
    expected = "SUCCEEDED" if error is None else "FAILED"
    if outcome["status"] != expected or outcome.get("error") != error:
        raise ScenarioFailed(f"{machine}: {outcome['status']} {outcome.get('error')}: {outcome.get('cause')}")
    answer = dict(json.loads(outcome["output"] if error is None else outcome["cause"]))
    # A failed compensation keeps the step's error (compensationFailed, leftovers): a refusal all the same.
    if answer.get("compensationFailed") or answer.get("leftovers"):
        raise ScenarioFailed(f"{machine}: left behind {answer.get('leftovers')}")
    return answer


def settle(session: SandboxSession) -> None:
    """Wait until no execution of the stack's state machines runs."""
    sfn = session.sandbox.boto3_client("stepfunctions")
    for machine in session.workflows.state_machine_arns.values():
        for running in sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
            session.workflows.wait(running["executionArn"], timeout_s=WAIT_SECONDS)


def fresh_account(session: SandboxSession) -> None:
    """As an account that never ran the stack: no service-linked roles, pod execution role, cache rules or cached
    repositories (done as the administrator, outside the stack's roles)."""
    sandbox = session.sandbox
    iam = sandbox.moto_client("iam")
    for name in SERVICE_LINKED_ROLES.values():
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role(RoleName=name)
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        for attached in iam.list_attached_role_policies(RoleName=POD_ROLE)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=POD_ROLE, PolicyArn=attached["PolicyArn"])
        for name in iam.list_role_policies(RoleName=POD_ROLE)["PolicyNames"]:
            iam.delete_role_policy(RoleName=POD_ROLE, PolicyName=name)
        iam.delete_role(RoleName=POD_ROLE)
    eks = sandbox.moto_client("eks")
    for name in eks.list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"]:
        eks.delete_fargate_profile(clusterName=CLUSTER, fargateProfileName=name)
    ecr = sandbox.boto3_client("ecr")
    for rule in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]:
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=rule["ecrRepositoryPrefix"])
    for repository in sandbox.moto_client("ecr").describe_repositories()["repositories"]:
        ecr.delete_repository(repositoryName=repository["repositoryName"], force=True)
    no_app_holds_anything(sandbox, session.workflows)  # and no app holds any of them
    sandbox.iam.forget_policies()


def account_with_profiles(session: SandboxSession) -> None:
    """As an account that had Fargate profiles before: EKS's service-linked role exists."""
    iam = session.sandbox.moto_client("iam")
    service = "eks-fargate.amazonaws.com"
    trust = {**POD_TRUST, "Statement": [{**POD_TRUST["Statement"][0], "Principal": {"Service": service}}]}
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(
            RoleName=SERVICE_LINKED_ROLES[service],
            Path=f"/aws-service-role/{service}/",
            AssumeRolePolicyDocument=json.dumps(trust),
        )


def _api(session: SandboxSession, method: str, path: str, body: Any = None) -> dict[str, Any]:
    answer = session.api.call(method, path, body)
    if answer.status not in (200, 202):
        raise ScenarioFailed(f"{method} {path}: {answer.status} {answer.json()}")
    return dict(answer.json())


# --- the scenarios --------------------------------------------------------------------------------------------------
def first_app_in_a_new_account(session: SandboxSession) -> None:
    """The README's first call, through the API: every resource is created (service-linked roles too), the app is
    exposed, the new cache rule warms its watch list, the status is read, then the app is deleted and its profile
    released; the POST and the DELETE are each sent twice, as a client's retry."""
    body = request(unique("first"), port=80, expose={"ingress": {}})
    path = f"/apps/{CLUSTER}/{body['namespace']}/{body['app']}"
    earlier = set(session.workflows.executions())
    started = _api(session, "POST", "/apps", body)
    _reports_running(session, path, started["executionArn"])
    _replays(session, "POST", "/apps", body, started["executionArn"])
    result = finished(session, "ProvisionStateMachine", started["executionArn"])
    if not (result["fargateProfile"]["created"] and result["cacheRule"]["created"] and result["ingress"]):
        raise ScenarioFailed(f"the first provision reused what it should have created: {result}")
    _warmed(finished(session, "WarmCacheStateMachine", _started_warm_cache(session, earlier)))
    if _api(session, "GET", path)["status"] != "SUCCEEDED":
        raise ScenarioFailed(f"GET {path} does not report the provision")
    listed = _api(session, "GET", f"/apps?cluster={CLUSTER}&namespace={body['namespace']}")["apps"]
    if [(a["app"], a["state"]) for a in listed] != [(body["app"], "RUNNING")]:
        raise ScenarioFailed(f"GET /apps does not list the app running: {listed}")
    deleting = _api(session, "DELETE", path)["executionArn"]
    _reports_running(session, path, deleting)
    _replays(session, "DELETE", path, None, deleting)
    report = finished(session, "TeardownStateMachine", deleting)
    if report["leftovers"] or not report["fargateProfile"]["deleting"]:
        raise ScenarioFailed(f"the teardown left {report['leftovers']} or kept the profile")
    if _api(session, "GET", path)["status"] != "SUCCEEDED":
        raise ScenarioFailed(f"GET {path} does not report the teardown")


def _replays(session: SandboxSession, method: str, path: str, body: Any, execution_arn: str) -> None:
    """A client's retry of a call whose execution still runs: that execution again (the API asks Step Functions
    whether the execution the app's item names still runs), nothing new started."""
    again = _api(session, method, path, body)
    if (again["executionArn"], again["replayed"]) != (execution_arn, True):
        raise ScenarioFailed(f"{method} {path} again while {execution_arn} runs did not replay it: {again}")


def _reports_running(session: SandboxSession, path: str, execution_arn: str) -> None:
    """GET right after a start: the execution just started, running (its state read from its history, where it may
    not have entered one yet)."""
    status = _api(session, "GET", path)
    if (status["executionArn"], status["status"]) != (execution_arn, "RUNNING"):
        raise ScenarioFailed(f"GET {path} right after the start does not report it running: {status}")


def _started_warm_cache(session: SandboxSession, earlier: set[str]) -> str:
    """The warm-cache execution EventBridge started for a rule created after ``earlier`` was listed."""
    workflows = session.workflows
    machine = workflows.state_machine_arns["WarmCacheStateMachine"].split(":")[-1]
    deadline = time.monotonic() + 5  # EventBridge delivers right after the API call has answered
    while time.monotonic() < deadline:
        started = [arn for arn in workflows.executions() if f":{machine}:" in arn and arn not in earlier]
        if started:
            return started[0]
        time.sleep(0.05)
    raise ScenarioFailed("EventBridge started no warm-cache execution for the new rule")


def apps_beside_each_other(session: SandboxSession) -> None:
    """An account that has profiles: a new namespace's profile (EKS checks its service-linked role exists), a
    second app in the same namespace, and teardowns that keep the profile while another app uses it."""
    account_with_profiles(session)
    namespace = unique("team")
    first = execute(session, "ProvisionStateMachine", request(namespace))
    # the second names its subnets: ValidateRequest checks they exist in the cluster's VPC
    subnets = session.sandbox.seeds.network.private_subnets
    second = execute(session, "ProvisionStateMachine", request(namespace, subnets=subnets))
    if second["fargateProfile"]["created"]:
        raise ScenarioFailed("the second app of a namespace created a profile of its own")
    kept = execute(session, "TeardownStateMachine", {"request": second["request"], "provision": second})
    if kept["fargateProfile"]["deleting"]:
        raise ScenarioFailed("the profile was deleted while another app still uses it")
    released = execute(session, "TeardownStateMachine", {"request": first["request"], "provision": first})
    if not released["fargateProfile"]["deleting"]:
        raise ScenarioFailed("the last app's teardown kept the profile")


def a_failed_apply_is_compensated(session: SandboxSession) -> None:
    """The API server refuses the Service after the Deployment was applied: compensation deletes the app's objects
    and everything the execution created (its profile, its cache rule, and its role, which no other profile of the
    cluster uses)."""
    sandbox = session.sandbox
    other_role = sandbox.moto_client("iam").create_role(
        RoleName=unique("other-pods"), AssumeRolePolicyDocument=json.dumps(POD_TRUST)
    )["Role"]["Arn"]
    sandbox.moto_client("eks").create_fargate_profile(
        clusterName=CLUSTER,
        fargateProfileName=unique("other"),
        podExecutionRoleArn=other_role,
        subnets=sandbox.seeds.network.private_subnets,
        selectors=[{"namespace": unique("other")}],
    )
    session.sandbox.faults.fail_kubernetes(r"/services/", 1, 422, method="PATCH", reason="Invalid")
    try:
        cause = execute(session, "ProvisionStateMachine", request(unique("broken"), port=80), error="ManifestInvalid")
    finally:
        session.sandbox.faults.clear()
    compensated = " ".join(cause["compensated"])
    for expected in ("Deployment", "Fargate profile", "pull-through-cache rule", f"IAM role {POD_ROLE}"):
        if expected not in compensated:
            raise ScenarioFailed(f"compensation left {expected!r}: {cause}")


def updates_prune_and_roll_back(session: SandboxSession) -> None:
    """Updates through the API: one that drops the app's port and Ingress fails in its rollout check after ApplyApp
    deleted them, and is rolled back (Compensate applies the last good revision again, creating them anew); sent
    again, it succeeds and ApplyApp deletes the Service and the Ingress for good; the teardown releases the profile.
    Each run makes a namespace of its own, whose profile counts against EKS's 10 until the next fresh start."""
    body = request(unique("upd"), port=80, expose={"ingress": {}})
    namespace = body["namespace"]
    good = _api(session, "POST", "/apps", body)
    finished(session, "ProvisionStateMachine", good["executionArn"])
    slim = {key: value for key, value in body.items() if key not in ("port", "expose")}
    session.sandbox.faults.fail_kubernetes(rf"/namespaces/{namespace}/pods", 1, 403, method="GET", reason="Forbidden")
    try:
        refused = _api(session, "POST", "/apps", slim)
        cause = finished(session, "ProvisionStateMachine", refused["executionArn"], error="KubernetesForbidden")
    finally:
        session.sandbox.faults.clear()
    if cause.get("rolledBackTo") != good["executionName"] or _exposure(session, namespace) != ["Service", "Ingress"]:
        raise ScenarioFailed(f"the failed update was not rolled back to {good['executionName']}: {cause}")
    result = finished(session, "ProvisionStateMachine", _api(session, "POST", "/apps", slim)["executionArn"])
    if _exposure(session, namespace):
        raise ScenarioFailed(f"the update without port and ingress left {_exposure(session, namespace)}")
    execute(session, "TeardownStateMachine", {"request": result["request"], "provision": result})


def an_update_with_new_labels_moves_to_another_profile(session: SandboxSession) -> None:
    """An update through the API that changes the app's labels: it runs on the profile of its new labels, and the
    provision releases (deletes) the profile its last good revision ran on; the teardown releases the new one."""
    body = request(unique("move"), labels={"tier": "web"})
    first = finished(session, "ProvisionStateMachine", _api(session, "POST", "/apps", body)["executionArn"])
    relabelled = {**body, "labels": {"tier": "api"}}
    moved = finished(session, "ProvisionStateMachine", _api(session, "POST", "/apps", relabelled)["executionArn"])
    release = moved.get("previousProfile") or {}
    if not release.get("deleting") or (release.get("profile") or {}).get("name") != first["fargateProfile"]["name"]:
        raise ScenarioFailed(f"the profile the update left was not released: {release}")
    execute(session, "TeardownStateMachine", {"request": moved["request"], "provision": moved})


def _exposure(session: SandboxSession, namespace: str) -> list[str]:
    kubernetes = session.sandbox.kubernetes
    assert kubernetes is not None
    return [kind for kind in ("Service", "Ingress") if kubernetes.objects(kind, namespace)]


def a_failing_provision_keeps_what_a_running_one_reused(session: SandboxSession) -> None:
    """Two provisions, the second started once the first created the cache rule (the first then
    waits on the registry): the first, for a tag that does not exist, fails and keeps the rule it created, because
    the second took it meanwhile (Compensate claims the rule only while its holder set is empty)."""
    namespace = unique("pair")
    sandbox = session.sandbox
    ecr = sandbox.boto3_client("ecr")
    # long enough for the second to take the rule (six Lambda steps) before the first compensates
    sandbox.faults.hang_registry(r"/manifests/no-such-tag", 1, 10.0)
    try:
        typo = session.workflows.start(
            "ProvisionStateMachine", request(namespace, image="public.ecr.aws/nginx/nginx:no-such-tag")
        )
        deadline = time.monotonic() + WAIT_SECONDS
        while not ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]:
            if time.monotonic() > deadline:
                raise ScenarioFailed("the first provision created no cache rule")
            time.sleep(0.05)
        web = session.workflows.start("ProvisionStateMachine", request(namespace))
        cause = finished(session, "ProvisionStateMachine", typo, error="ImageNotFound")
        result = finished(session, "ProvisionStateMachine", web)
    finally:
        sandbox.faults.clear()
    if result["cacheRule"]["created"] or not any(
        item.startswith("pull-through-cache rule") and "(kept: held by" in item for item in cause["kept"]
    ):
        raise ScenarioFailed(f"the failed provision did not keep what the running one reused: {cause}")
    execute(session, "TeardownStateMachine", {"request": result["request"], "provision": result})


def a_console_teardown_finds_the_profile_by_its_tag(session: SandboxSession) -> None:
    """A teardown started from the console with the request alone: the profile is found among the cluster's by
    its tags, and released."""
    result = execute(session, "ProvisionStateMachine", request(unique("console")))
    report = execute(session, "TeardownStateMachine", {"request": result["request"]})
    if not report["fargateProfile"]["deleting"]:
        raise ScenarioFailed(f"the console teardown did not find the profile: {report}")


def starts_after_stopped_executions_run(session: SandboxSession) -> None:
    """Executions of an app stopped from the console (no Catch runs, so no end is recorded): the app's item still
    says a provision, then a teardown, is running, and each next start (ValidateRequest for a provision, the
    teardown's own DescribeTheRecordedExecution) asks Step Functions, finds it stopped, and runs; the last provision
    succeeds and is torn down."""
    body = request(unique("stopped"))
    key = f"{CLUSTER}/{body['namespace']}/{body['app']}"
    _stopped_once_recorded(session, "ProvisionStateMachine", body, key)
    _stopped_once_recorded(session, "ProvisionStateMachine", body, key)  # asks about the stopped provision
    _stopped_once_recorded(session, "TeardownStateMachine", {"request": body}, key)  # asks about the provision
    _stopped_once_recorded(session, "TeardownStateMachine", {"request": body}, key)  # asks about the teardown
    result = execute(session, "ProvisionStateMachine", body)  # asks about the stopped teardown
    execute(session, "TeardownStateMachine", {"request": result["request"], "provision": result})


def _stopped_once_recorded(session: SandboxSession, machine: str, payload: Any, key: str) -> None:
    """Start an execution and stop it (as the administrator) once the app's item records it as running."""
    sandbox, workflows = session.sandbox, session.workflows
    arn = workflows.start(machine, payload)
    table = workflows.template.table("AppsTable")
    dynamodb = sandbox.moto_client("dynamodb")
    deadline = time.monotonic() + WAIT_SECONDS
    while (
        dynamodb.get_item(TableName=table.name, Key={"app": {"S": key}})
        .get("Item", {})
        .get("executionArn", {})
        .get("S")
        != arn
    ):
        outcome = workflows.describe(arn)
        if outcome["status"] != "RUNNING" or time.monotonic() > deadline:
            raise ScenarioFailed(f"{machine}: {outcome['status']} before it recorded itself: {outcome.get('cause')}")
        time.sleep(0.02)
    sandbox.boto3_client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped")
    if workflows.wait(arn, timeout_s=WAIT_SECONDS)["status"] != "ABORTED":
        raise ScenarioFailed(f"{machine}: {arn} ended before it could be stopped")


def a_drifted_pod_role_is_repaired(session: SandboxSession) -> None:
    """Someone edited the trust policy of the stack's pod execution role: the next provision puts it back."""
    iam = session.sandbox.boto3_client("iam")
    execute(session, "ProvisionStateMachine", request(unique("drift")))  # the role exists, tagged as ours
    edited = {**POD_TRUST, "Statement": [{**POD_TRUST["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}]}
    iam.update_assume_role_policy(RoleName=POD_ROLE, PolicyDocument=json.dumps(edited))
    execute(session, "ProvisionStateMachine", request(unique("drift")))
    trust = iam.get_role(RoleName=POD_ROLE)["Role"]["AssumeRolePolicyDocument"]
    if "eks-fargate-pods.amazonaws.com" not in json.dumps(trust):
        raise ScenarioFailed(f"the pod role's trust policy was not repaired: {trust}")


def a_cache_rule_made_by_hand_is_reused(session: SandboxSession) -> None:
    """A rule for the upstream exists under another prefix: it is reused and the pod role granted its prefix."""
    prefix = unique("shared")
    session.sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws"
    )
    result = execute(session, "ProvisionStateMachine", request(unique("reuse")))
    if result["cacheRule"]["ecrRepositoryPrefix"] != prefix:
        raise ScenarioFailed(f"the rule {prefix} was not reused: {result['cacheRule']}")


def a_wrong_upstream_credential_is_refused(session: SandboxSession) -> None:
    """A credential secret ECR cannot log in with: the rule just made for it is deleted again and the request
    fails, naming the secret."""
    sandbox = session.sandbox
    name = unique("ecr-pullthroughcache/wrong")
    wrong = {**UPSTREAM_CREDENTIALS["registry-1.docker.io"], "accessToken": "not-the-token"}
    arn = sandbox.boto3_client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(wrong))["ARN"]
    prefix = unique("hub")
    body = request(unique("creds"), image="docker.io/library/redis:7", cachePrefix=prefix, credentialArn=arn)
    cause = execute(session, "ProvisionStateMachine", body, error="UpstreamCredentialInvalid")
    if "is not valid" not in cause["cause"]:
        raise ScenarioFailed(f"refused for another reason than the credential: {cause}")
    rules = sandbox.boto3_client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    if prefix in [rule["ecrRepositoryPrefix"] for rule in rules]:
        raise ScenarioFailed(f"the rule {prefix} of the refused credential was kept")


def an_image_of_another_accounts_registry_needs_its_rule(session: SandboxSession) -> None:
    """An image from another account's ECR registry, without the rule (with the role ECR assumes) its owner must
    create: refused before anything is created."""
    body = request(unique("ecr"), image="444455556666.dkr.ecr.us-east-1.amazonaws.com/team/api:1.0")
    cause = execute(session, "ProvisionStateMachine", {**body, "cachePrefix": unique("ecr")}, error="CacheRuleMissing")
    if "customRoleArn" not in json.dumps(cause):
        raise ScenarioFailed(f"refused without saying what to do: {cause}")


def a_new_cache_rule_warms_the_watch_list(session: SandboxSession) -> None:
    """Someone creates a rule for registry.k8s.io: EventBridge starts the warm-cache workflow with its role."""
    earlier = set(session.workflows.executions())
    prefix = unique("k8s")
    session.sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry.k8s.io"
    )
    _warmed(finished(session, "WarmCacheStateMachine", _started_warm_cache(session, earlier)))


def _warmed(report: dict[str, Any]) -> None:
    if not report["images"] or not all(image["warmed"] for image in report["images"]):
        raise ScenarioFailed(f"the watch list was not warmed: {report['images']}")


def the_state_machines_deploy(session: SandboxSession) -> None:
    """A stack update: each state machine is updated with its CloudWatch Logs destination."""
    try:
        session.workflows.deploy_state_machines()
    except Exception as exc:  # botocore's ClientError: the refusal is the scenario's failure
        raise ScenarioFailed(f"UpdateStateMachine: {exc}") from exc


def _scenario(run: Callable[[SandboxSession], None]) -> Scenario:
    return Scenario(run.__name__, " ".join((run.__doc__ or "").split()), run)


SCENARIOS = tuple(
    _scenario(run)
    for run in (
        first_app_in_a_new_account,
        apps_beside_each_other,
        a_failed_apply_is_compensated,
        updates_prune_and_roll_back,
        an_update_with_new_labels_moves_to_another_profile,
        a_failing_provision_keeps_what_a_running_one_reused,
        a_console_teardown_finds_the_profile_by_its_tag,
        starts_after_stopped_executions_run,
        a_drifted_pod_role_is_repaired,
        a_cache_rule_made_by_hand_is_reused,
        a_wrong_upstream_credential_is_refused,
        an_image_of_another_accounts_registry_needs_its_rule,
        a_new_cache_rule_warms_the_watch_list,
        the_state_machines_deploy,
    )
)
