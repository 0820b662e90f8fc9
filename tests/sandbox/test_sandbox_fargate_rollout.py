"""The walkthrough's last steps in the sandbox, through production code: DescribeCluster leads to the Kubernetes
emulator (HTTPS with the cluster's CA, EKS token checked against the sandbox's STS), and the Fargate scheduler runs
the app only on a matching ACTIVE profile with an image the cache resolves."""

from __future__ import annotations

import re

import pytest
from sandbox_test_support import PROFILE_SECONDS, unique

from fargate_app.aws.ecr import ensure_cache_rule
from fargate_app.aws.eks import ensure_fargate_profile
from fargate_app.aws.iam import ensure_pod_execution_role
from fargate_app.config import Settings
from fargate_app.kube.client import KubeApiCache
from fargate_app.kube.models import ApplyAppEvent, CheckRolloutEvent
from fargate_app.kube.steps import apply_app, check_rollout
from fargate_app.models import CacheRule, ProvisionRequest, parse_request
from fargate_app.registry import warm_image_cache
from fargate_sandbox.eks_rules import ManualClock
from fargate_sandbox.sandbox import Sandbox

IMAGE = "registry.k8s.io/pause:3.10"  # a seeded upstream served by its real pull-through proxy


def _request(namespace: str) -> ProvisionRequest:
    body = {"cluster": "blog", "app": "demo-app", "namespace": namespace, "image": IMAGE, "cachePrefix": unique("k")}
    return parse_request(body, region="us-west-2", account="111122223333")


def _apply_and_check(settings: Settings, request: ProvisionRequest, cached: str) -> tuple[object, object]:
    apis = KubeApiCache()
    event = {
        "request": request.to_json(),
        "image": {"cached": cached},
        "executionArn": "arn:aws:states:us-west-2:111122223333:execution:provision:demo-app-1",
    }
    applied = apply_app(settings, ApplyAppEvent.model_validate(event), apis=apis)
    rollout = check_rollout(
        settings.model_copy(update={"rollout_grace_seconds": 0}),
        CheckRolloutEvent.model_validate({"request": event["request"], "startedAt": applied.applied_at}),
        apis=apis,
    )
    return applied, rollout


def _rollout_failure(settings: Settings, request: ProvisionRequest, cached: str) -> str:
    """The message of the RolloutFailed that applying the app and checking its rollout must end in."""
    with pytest.raises(Exception) as caught:
        _apply_and_check(settings, request, cached)
    assert type(caught.value).__name__ == "RolloutFailed"
    return str(caught.value)


def _active_profile_and_rule(settings: Settings, clock: ManualClock, request: ProvisionRequest) -> CacheRule:
    """The role, an ACTIVE Fargate profile for the request's namespace, and its cache rule, as the workflow makes them."""
    role = ensure_pod_execution_role(settings, "blog", request.effective_cache_prefix)
    ensure_fargate_profile(settings, request, role.arn)
    clock.advance(PROFILE_SECONDS)
    return ensure_cache_rule(settings, request, role.name)


def _ready_to_apply(settings: Settings, clock: ManualClock, namespace: str) -> tuple[ProvisionRequest, str]:
    """A request for ``namespace`` with its role, ACTIVE profile and rule, and its image warmed: the cached reference."""
    request = _request(namespace)
    rule = _active_profile_and_rule(settings, clock, request)
    return request, warm_image_cache(request.image, rule.ecr_repository_prefix, request.platform).cached


def test_app_runs_on_a_fargate_node_once_its_profile_is_active(
    sandbox: Sandbox, sandbox_clock: ManualClock, aws_env: Settings
) -> None:
    # Given the role, an ACTIVE profile for a fresh namespace, a cache rule and the warmed image
    request, cached = _ready_to_apply(aws_env, sandbox_clock, unique("ns"))
    # When the app is applied and its rollout checked
    applied, rollout = _apply_and_check(aws_env, request, cached)
    # Then the namespace was created and the pod runs, pinned by digest, on its own fargate- node
    assert applied.namespace_created  # type: ignore[attr-defined]
    (pod,) = rollout.pods  # type: ignore[attr-defined]
    assert pod.phase == "Running" and pod.node.startswith("fargate-ip-10-0-")
    assert pod.node.endswith(".us-west-2.compute.internal")
    assert sandbox.kubernetes is not None
    (deployment,) = sandbox.kubernetes.objects("Deployment", request.namespace)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == cached


def test_without_a_matching_profile_the_pod_stays_pending(sandbox: Sandbox, aws_env: Settings) -> None:
    # Given a warmed image but no Fargate profile for the namespace (earlier tests' shared profiles, which select
    # every managed pod in any namespace, removed behind the front)
    eks = sandbox.moto_client("eks")
    for name in eks.list_fargate_profiles(clusterName="blog")["fargateProfileNames"]:
        selectors = eks.describe_fargate_profile(clusterName="blog", fargateProfileName=name)["fargateProfile"][
            "selectors"
        ]
        if any(selector["namespace"] == "*" for selector in selectors):
            eks.delete_fargate_profile(clusterName="blog", fargateProfileName=name)
    request = _request(unique("nofargate"))
    rule = ensure_cache_rule(aws_env, request)
    warmed = warm_image_cache(request.image, rule.ecr_repository_prefix, request.platform)
    # When the app is applied, then the rollout fails with the scheduler's FailedScheduling message
    assert re.search("FailedScheduling|nodes are available|no nodes", _rollout_failure(aws_env, request, warmed.cached))


def test_an_image_the_cache_never_imported_fails_to_pull(
    sandbox: Sandbox, sandbox_clock: ManualClock, aws_env: Settings
) -> None:
    # Given an ACTIVE profile and a rule, but the image pinned by a digest no pull by tag imported
    request = _request(unique("ns"))
    rule = _active_profile_and_rule(aws_env, sandbox_clock, request)
    assert sandbox.upstreams is not None
    digest = sandbox.upstreams.digest("registry.k8s.io", "pause", "3.10")
    host = sandbox.registry_url.removeprefix("http://")
    cached = f"{host}/{rule.ecr_repository_prefix}/pause@{digest}"
    # When the app is applied, then the rollout fails with ErrImagePull's message
    assert "Failed to pull image" in _rollout_failure(aws_env, request, cached)


def test_kubernetes_faults_fire_exactly_n_times_and_surface_as_retryable(
    sandbox: Sandbox, sandbox_clock: ManualClock, aws_env: Settings
) -> None:
    # Given the API server answers 503 twice for the app's Deployment
    request, cached = _ready_to_apply(aws_env, sandbox_clock, unique("flaky"))
    sandbox.faults.fail_kubernetes(rf"/apis/apps/v1/namespaces/{request.namespace}/deployments/", 2, 503)
    # When ApplyApp runs three times (as the state machine's Retry would run it)
    outcomes = []
    for _ in range(3):
        try:
            _apply_and_check(aws_env, request, cached)
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    # Then the first two fail with the retryable error and the third succeeds
    assert outcomes == ["KubernetesUnavailable", "KubernetesUnavailable", "ok"]
