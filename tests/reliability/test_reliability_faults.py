"""Faults injected through the sandbox's hooks, one kind per case. Each is either survived by
retries (the app ends Running: the execution SUCCEEDED and its pods run on Fargate nodes) or compensated (the
execution FAILED naming the step and the error, and nothing it created remains).

Cases run one after another (the hooks are process-wide counters: a concurrent execution would take the faults).
Apps share one namespace, whose Fargate profile the first case creates, unless the fault is on profile creation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from figures import record_polls
from reliability_support import (
    REQUEST,
    cause_of,
    created_since,
    inventory,
    lambda_timeouts,
    per_namespace_workflows,
    run,
    unique,
)

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_faults")
SHARED_NAMESPACE = "faults"
MANIFESTS = r"/manifests/"
DEPLOYMENT_APPLY = r"/apis/apps/v1/namespaces/[^/]+/deployments/"
RESOURCE_IN_USE = (
    "Cannot create Fargate Profile {name} because cluster blog currently has Fargate profile other in status CREATING"
)
TRUST_POLICY = (
    "Misconfigured PodExecutionRole Trust Policy; Please add the eks-fargate-pods.amazonaws.com Service Principal"
)


@dataclass(frozen=True)
class FaultCase:
    kind: str
    arm: Callable[[Sandbox], None]
    expect: str  # "survived" | "compensated"
    step: str | None = None  # compensated: the step the error names
    error: str | None = None
    fresh_namespace: bool = False  # the fault is on creating a Fargate profile
    fresh_prefix: bool = False  # the fault is on creating a pull-through-cache rule
    request: dict[str, Any] = field(default_factory=dict)


def throttle(api: str, times: int = 2) -> Callable[[Sandbox], None]:
    return lambda sandbox: sandbox.faults.throttle_aws(api, times)


def fail_aws(api: str, times: int, code: str, message: str, status: int) -> Callable[[Sandbox], None]:
    return lambda sandbox: sandbox.faults.fail_aws(api, times, code, message, status)


def registry(status: int, times: int) -> Callable[[Sandbox], None]:
    return lambda sandbox: sandbox.faults.fail_registry(MANIFESTS, times, status)


def kubernetes(status: int, times: int, reason: str) -> Callable[[Sandbox], None]:
    return lambda sandbox: sandbox.faults.fail_kubernetes(
        DEPLOYMENT_APPLY, times, status, method="PATCH", reason=reason
    )


CASES = [
    # --- throttling on each AWS API the provision steps call ---
    FaultCase("throttling: iam:GetRole (EnsurePodExecutionRole)", throttle("iam:GetRole"), "survived"),
    FaultCase("throttling: eks:DescribeCluster (EnsureFargateProfile)", throttle("eks:DescribeCluster"), "survived"),
    FaultCase("throttling: eks:ListFargateProfiles", throttle("eks:ListFargateProfiles"), "survived"),
    FaultCase("throttling: eks:DescribeFargateProfile", throttle("eks:DescribeFargateProfile", 3), "survived"),
    FaultCase(
        "throttling: eks:CreateFargateProfile", throttle("eks:CreateFargateProfile"), "survived", fresh_namespace=True
    ),
    FaultCase(
        "throttling: ec2:DescribeRouteTables", throttle("ec2:DescribeRouteTables"), "survived", fresh_namespace=True
    ),
    FaultCase(
        "throttling: ecr:DescribePullThroughCacheRules", throttle("ecr:DescribePullThroughCacheRules"), "survived"
    ),
    FaultCase(
        "throttling: ecr:CreatePullThroughCacheRule",
        throttle("ecr:CreatePullThroughCacheRule"),
        "survived",
        fresh_prefix=True,
    ),
    FaultCase("throttling: ecr:ValidatePullThroughCacheRule", throttle("ecr:ValidatePullThroughCacheRule"), "survived"),
    FaultCase(
        "throttling: secretsmanager:DescribeSecret (credential check)",
        throttle("secretsmanager:DescribeSecret"),
        "survived",
        fresh_prefix=True,
        request={"image": "docker.io/library/redis:7"},
    ),
    FaultCase(
        "throttling: ecr:GetAuthorizationToken (WarmImageCache)", throttle("ecr:GetAuthorizationToken"), "survived"
    ),
    # --- DynamoDB failing inside on the state machine's own write (RecordProvisionStart, the first UpdateItem):
    # a code its API does not model is Step Functions' DynamoDB.AmazonDynamoDBException, which the Retry lists ---
    FaultCase(
        "DynamoDB InternalFailure (500) on the app inventory's UpdateItem (x2)",
        fail_aws("dynamodb:UpdateItem", 2, "InternalFailure", "injected", 500),
        "survived",
    ),
    # --- EKS's one-operation-per-cluster rule and IAM propagation ---
    FaultCase(
        "ResourceInUseException storm (6 in a row on CreateFargateProfile)",
        fail_aws("eks:CreateFargateProfile", 6, "ResourceInUseException", RESOURCE_IN_USE, 409),
        "survived",
        fresh_namespace=True,
    ),
    FaultCase(
        "IAM propagation: 'Misconfigured PodExecutionRole Trust Policy' on the first profile creation (x2)",
        fail_aws("eks:CreateFargateProfile", 2, "InvalidParameterException", TRUST_POLICY, 400),
        "survived",
        fresh_namespace=True,
    ),
    # --- the upstream registry, seen through the pull-through cache ---
    FaultCase("registry 429 Too Many Requests (x2)", registry(429, 2), "survived"),
    FaultCase("registry 503 Service Unavailable (x3)", registry(503, 3), "survived"),
    FaultCase("registry 500 Internal Server Error (x2)", registry(500, 2), "survived"),
    FaultCase("registry 401 once (token refreshed)", registry(401, 1), "survived"),
    FaultCase(
        "registry hang (no answer for 1 s, connection dropped)",
        lambda sandbox: sandbox.faults.hang_registry(MANIFESTS, 1, 1.0),
        "survived",
    ),
    FaultCase(
        "registry 401 on every pull",
        registry(401, 20),
        "compensated",
        step="WarmImageCache",
        error="UpstreamAuthFailed",
        fresh_prefix=True,
    ),
    FaultCase(
        "registry 404 (image gone upstream)",
        registry(404, 20),
        "compensated",
        step="WarmImageCache",
        error="ImageNotFound",
        fresh_prefix=True,
    ),
    # --- the Kubernetes API ---
    FaultCase("Kubernetes 429 on apply (x2)", kubernetes(429, 2, "TooManyRequests"), "survived"),
    FaultCase("Kubernetes 503 on apply (x2)", kubernetes(503, 2, "ServiceUnavailable"), "survived"),
    FaultCase(
        "Kubernetes 409 Conflict on apply",
        kubernetes(409, 1, "Conflict"),
        "compensated",
        step="ApplyApp",
        error="KubernetesConflict",
    ),
    FaultCase(
        "Kubernetes 422 Invalid on apply",
        kubernetes(422, 1, "Invalid"),
        "compensated",
        step="ApplyApp",
        error="ManifestInvalid",
    ),
    # --- a permanent AWS refusal after the profile was created ---
    FaultCase(
        "AccessDenied on CreatePullThroughCacheRule",
        fail_aws("ecr:CreatePullThroughCacheRule", 1, "AccessDeniedException", "not authorized", 400),
        "compensated",
        step="EnsureCacheRule",
        error="AccessDenied",
        fresh_namespace=True,
        fresh_prefix=True,
    ),
]


def settle(sandbox: Sandbox, timeout: float = 30) -> None:
    """Wait until no Fargate profile is CREATING or DELETING (a compensated profile is listed until it is gone)."""
    deadline = time.monotonic() + timeout
    while any(p["status"] in ("CREATING", "DELETING") for p in sandbox.fargate_profiles("blog")):
        assert time.monotonic() < deadline, sandbox.fargate_profiles("blog")
        time.sleep(0.1)


def path_faults_fired(sandbox: Sandbox) -> int:
    # The injector counts the shots of each path fault; it has no public getter for path faults (only fired_aws).
    faults = sandbox.faults
    return sum(entry.armed.fired for entry in [*faults._registry, *faults._kubernetes])


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Any) -> Iterator[Workflows]:
    """The per-namespace profile strategy: each fresh namespace needs a profile of its own, so the faults of
    CreateFargateProfile meet a real creation (the shared strategy would reuse one profile)."""
    with per_namespace_workflows(sandbox) as harness:
        yield harness
        record_polls(figures, harness, "reliability")


@pytest.fixture(scope="module")
def shared_namespace(workflows: Workflows) -> str:
    """Provision once so the shared namespace has its profile and the default cache rule exists."""
    outcome = run(workflows, "ProvisionStateMachine", {**REQUEST, "namespace": SHARED_NAMESPACE, "app": "baseline"})
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    return SHARED_NAMESPACE


def request_for(case: FaultCase, sandbox: Sandbox, namespace: str) -> dict[str, Any]:
    request: dict[str, Any] = {**REQUEST, "app": unique("app"), "namespace": namespace, **case.request}
    if case.fresh_namespace:
        request["namespace"] = unique("fault")
    if case.fresh_prefix:
        request["cachePrefix"] = unique("c")
    if request["image"].startswith("docker.io/"):
        request["credentialArn"] = sandbox.seeds.secret_arns["ecr-pullthroughcache/docker-hub"]
    return request


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_fault(case: FaultCase, sandbox: Sandbox, workflows: Workflows, shared_namespace: str, figures: Any) -> None:
    # Given the sandbox's resources, and the fault armed
    settle(sandbox)
    before = inventory(sandbox)
    invoked_before = len(workflows.invocations())
    fired_before = path_faults_fired(sandbox)
    request = request_for(case, sandbox, shared_namespace)
    case.arm(sandbox)
    # When the app is provisioned
    outcome = run(workflows, "ProvisionStateMachine", request)
    fired = sum(sandbox.faults.fired_aws(api) for api in _aws_apis(sandbox)) + path_faults_fired(sandbox) - fired_before
    # A poll's "not yet" is its normal answer, not the fault's doing
    step_errors = [
        i.error_type for i in workflows.invocations()[invoked_before:] if i.error_type and "NotYet" not in i.error_type
    ]
    sandbox.faults.clear()
    settle(sandbox)
    left = created_since(before, inventory(sandbox))
    left.pop("ECR repositories", None)  # ECR creates the cache repository on the first pull; it is ECR's, not ours
    pods = [
        p
        for p in sandbox.kubernetes.objects("Pod", request["namespace"])  # type: ignore[union-attr]
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == request["app"]
    ]
    cause = cause_of(outcome) if outcome["status"] == "FAILED" else {}
    # (what happened, recorded before it is judged: the report checks it against the case's expected outcome)
    figures.add(
        "faults",
        kind=case.kind,
        expected=case.expect,
        outcome=observed_outcome(outcome, cause, pods, left),
        step=cause.get("step", ""),
        error=outcome.get("error") or "",
        faults=fired,
        retried=step_errors,
        undone=cause.get("compensated", []),
    )
    # Then the fault fired, and the step errors it caused are those the state machine retried or compensated
    assert fired > 0, f"{case.kind}: the fault never fired"
    if case.expect == "survived":
        assert outcome["status"] == "SUCCEEDED", (case.kind, outcome.get("cause"))
        assert pods and all(p["status"]["phase"] == "Running" for p in pods), pods
        assert all(p["spec"]["nodeName"].startswith("fargate-") for p in pods)
    else:
        assert (outcome["status"], outcome.get("error"), cause["step"]) == ("FAILED", case.error, case.step), outcome
        assert cause["leftovers"] == []
        assert left == {}, f"{case.kind}: the failed execution left {left}"


def observed_outcome(
    outcome: dict[str, Any], cause: dict[str, Any], pods: list[dict[str, Any]], left: dict[str, Any]
) -> str:
    """``survived: app Running`` (SUCCEEDED, every pod Running on a Fargate node), ``compensated`` (FAILED, nothing
    of the execution's left), or what was seen instead."""
    running = bool(pods) and all(
        p["status"].get("phase") == "Running" and str(p["spec"].get("nodeName", "")).startswith("fargate-")
        for p in pods
    )
    if outcome["status"] == "SUCCEEDED":
        return "survived: app Running" if running else f"SUCCEEDED but pods not Running on Fargate: {len(pods)} pods"
    if outcome["status"] == "FAILED" and not cause.get("leftovers") and not left:
        return "compensated"
    return f"{outcome['status']} {outcome.get('error')}: leftovers {cause.get('leftovers')}, left {left}"


def _aws_apis(sandbox: Sandbox) -> list[str]:
    return list(sandbox.faults._aws)


@pytest.fixture
def short_warm_timeout(workflows: Workflows) -> Iterator[int]:
    """WarmImageCache with a 6-second Lambda timeout (the template gives it 300 s; Lambda timeouts are not scaled).

    A timed-out worker is stopped, so each retry is a cold start (fork, import, ECR token, manifest and layers through
    the registry) that must fit in the timeout: about 0.7 s on an idle machine, 2-3 s on a loaded one, where 2 s
    sometimes timed out the retries too."""
    seconds = 6
    with lambda_timeouts(workflows, lambda name, timeout: seconds if name == "WarmImageCacheFunction" else timeout):
        yield seconds


def test_a_lambda_task_timing_out_is_retried(
    sandbox: Sandbox, workflows: Workflows, shared_namespace: str, short_warm_timeout: int, figures: Any
) -> None:
    # Given the registry hangs the first manifest request for longer than WarmImageCache's timeout
    request = {**REQUEST, "app": unique("timeout"), "namespace": shared_namespace}
    sandbox.faults.hang_registry(MANIFESTS, 1, short_warm_timeout + 2.0)
    invoked_before = len(workflows.invocations("WarmImageCacheFunction"))
    # When the app is provisioned
    outcome = run(workflows, "ProvisionStateMachine", request)
    warms = [i.error_type for i in workflows.invocations("WarmImageCacheFunction")[invoked_before:]]
    pods = sandbox.kubernetes.objects("Pod", shared_namespace)  # type: ignore[union-attr]
    pods = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == request["app"]]
    figures.add(
        "faults",
        kind=f"Lambda task timeout (WarmImageCache past its {short_warm_timeout} s timeout)",
        expected="survived",
        outcome=observed_outcome(outcome, {}, pods, {}),
        step="",
        error=outcome.get("error") or "",
        faults=sum(1 for w in warms if w == "Sandbox.Timedout"),
        retried=[w for w in warms if w],
    )
    # Then the timed-out task (Sandbox.Timedout, as Lambda reports it) was retried, and the app runs
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    assert warms[0] == "Sandbox.Timedout" and warms[-1] is None, warms
