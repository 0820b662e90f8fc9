"""Replays of one request give one execution and no duplicate resources; another request
for a running app is a 409; 20 apps in 4 namespaces provisioned at once all succeed with at most 4 profiles and no
ResourceInUseException reaching anyone, and 20 teardowns at once leave nothing behind."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from typing import Any

import pytest
from inventory_items import all_holders
from reliability_support import REQUEST, delete_app, inventory, lambda_timeouts, post_app, unique

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_concurrency")
# Twenty provisions start at once: their cold starts need a slower pod than the suite's for every rollout
# poll to turn at least twice (conftest.py).
POD_TIME_SCALE = 0.25
REPLAYS = 5
APPS, NAMESPACES, FAILING = 20, 4, 5
CROWD_TIMEOUT_FACTOR = 3


def wait_all(workflows: Workflows, arns: list[str], timeout: float = 900) -> list[dict[str, Any]]:
    """Every execution's end. ``timeout`` only guards against a hang: twenty executions take about a minute alone,
    several when the other test worker runs sandboxes on the same two cores (the time is a figure, not a goal)."""
    deadline = time.monotonic() + timeout
    return [workflows.wait(arn, timeout_s=max(1.0, deadline - time.monotonic())) for arn in arns]


def all_at_once(
    workflows: Workflows, send: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]], requests: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], float]:
    """Send every request at once through the API, then wait for every execution: their outcomes (a request the API
    did not accept with 202 is an outcome ``REFUSED <status>``) and the seconds from the first request to the last
    end."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(send, requests))
    accepted = [body["executionArn"] for status, body in answers if status == 202]
    ended = iter(wait_all(workflows, accepted))
    outcomes = [
        next(ended) if status == 202 else {"status": f"REFUSED {status}", "cause": json.dumps(body)}
        for status, body in answers
    ]
    return outcomes, time.monotonic() - started


def managed_profiles(sandbox: Sandbox, namespaces: set[str]) -> list[dict[str, Any]]:
    """Profiles whose selectors admit pods of ``namespaces`` (the shared one's ``*`` included)."""
    return [
        p
        for p in sandbox.fargate_profiles("blog")
        if any(fnmatchcase(ns, selector["namespace"]) for selector in p.get("selectors", []) for ns in namespaces)
    ]


def still_used(sandbox: Sandbox, profile: str, namespaces: set[str]) -> list[str]:
    """Managed apps outside ``namespaces`` whose pods name ``profile``: what justifies keeping it."""
    assert sandbox.kubernetes is not None
    return [
        f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in sandbox.kubernetes.objects("Deployment")
        if d["metadata"]["namespace"] not in namespaces
        and d["spec"]["template"]["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile") == profile
    ]


def executions_of(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> list[str]:
    """Every provision execution started for the app, by its name (Step Functions' own list, not the API's)."""
    readable = f"{request['cluster']}-{request['namespace']}-{request['app']}"
    machine = workflows.state_machine_arns["ProvisionStateMachine"]
    pages = sandbox.boto3_client("stepfunctions").get_paginator("list_executions").paginate(stateMachineArn=machine)
    return [e["executionArn"] for page in pages for e in page["executions"] if e["name"].startswith(readable)]


def test_replays_of_one_request_start_one_execution(sandbox: Sandbox, workflows: Workflows, figures: Any) -> None:
    # Given a request for a new app (the app's executions counted before: none)
    request = {**REQUEST, "app": unique("replay"), "namespace": unique("replay")}
    started_before = executions_of(sandbox, workflows, request)
    # When it is sent 5 times, all at once, as a client retrying on a timeout would
    with ThreadPoolExecutor(REPLAYS) as pool:
        answers = list(pool.map(lambda _: post_app(sandbox, workflows, request), range(REPLAYS)))
    arns = sorted({str(body.get("executionArn")) for _, body in answers})
    # And a different request for the same app while it runs
    conflict_status, conflict = post_app(sandbox, workflows, {**request, "replicas": 2})
    outcome = workflows.wait(arns[0], timeout_s=240)
    # And a replay after it succeeded
    late_status, late = post_app(sandbox, workflows, request)
    # (what happened, recorded before it is judged)
    started = sorted(set(executions_of(sandbox, workflows, request)) - set(started_before))
    profiles = managed_profiles(sandbox, {request["namespace"]})
    deployments = sandbox.kubernetes.objects("Deployment", request["namespace"])  # type: ignore[union-attr]
    figures.add(
        "replays",
        sent=REPLAYS + 2,
        executions=len(started),
        profiles=len(profiles),
        deployments=len(deployments),
        conflict=status_line(conflict_status, conflict),
        late=f"{late_status} replayed={late.get('replayed')}",
    )
    # Then every answer named the same execution, the only one Step Functions started for the app
    assert all(status in (200, 202) for status, _ in answers), answers
    assert len(arns) == 1 and started == arns, (answers, started)
    # And the different request was a conflict naming the running execution
    assert (conflict_status, conflict.get("error"), conflict.get("executionArn")) == (
        409,
        "ExecutionConflict",
        arns[0],
    ), conflict
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    # And the late replay answered the same execution (200) without starting another
    assert (late_status, late.get("executionArn"), late.get("replayed")) == (200, arns[0], True)
    # And no resource of the app exists twice
    assert len(profiles) == 1 and [d["metadata"]["name"] for d in deployments] == [request["app"]]


def status_line(status: int, body: dict[str, Any]) -> str:
    return f"{status} {body.get('error')}"


@pytest.fixture
def crowded_timeouts(workflows: Workflows) -> Iterator[int]:
    """Every function's Lambda timeout × ``CROWD_TIMEOUT_FACTOR`` during the burst.

    In AWS each of the twenty executions' invocations runs in an environment with its own CPU, and EKS, ECR and IAM
    do not slow down with the caller's concurrency; here all of them share two cores with the AWS and Kubernetes
    emulation (and the other test worker). A check of 1 s alone took 20-30 s in that crowd, so CheckRollout's 30 s
    timed out three times running on CI. This test is about shared profiles, rules and holder sets under
    concurrency; Lambda timeouts are tested on their own (tests/reliability/test_reliability_faults.py)."""
    with lambda_timeouts(workflows, lambda _, timeout: timeout * CROWD_TIMEOUT_FACTOR):
        yield CROWD_TIMEOUT_FACTOR


def our_holdings(sandbox: Sandbox, workflows: Workflows, apps: set[str]) -> dict[str, list[str]]:
    """Which of ``apps`` hold each shared resource (other tests' apps share the role, the rule and the profile)."""
    found = {resource: sorted(set(held) & apps) for resource, held in all_holders(sandbox, workflows).items()}
    return {resource: held for resource, held in found.items() if held}


def test_twenty_apps_in_four_namespaces_at_once_five_failing_then_the_teardowns(
    sandbox: Sandbox, workflows: Workflows, figures: Any, burst_lock: Any, crowded_timeouts: int
) -> None:
    # (alone on the two cores: no other burst of executions runs on the other test worker meanwhile)
    with burst_lock():
        # Given 20 requests for 20 apps spread over 4 new namespaces of one cluster, 5 of them for an image tag that
        # does not exist (they fail at WarmImageCache, after taking the role, the profile and the rule)
        namespaces = [unique("crowd") for _ in range(NAMESPACES)]
        requests = [{**REQUEST, "app": f"app-{i}", "namespace": namespaces[i % NAMESPACES]} for i in range(APPS)]
        for i in range(0, APPS, APPS // FAILING):
            requests[i]["image"] = "public.ecr.aws/nginx/nginx:no-such-tag"
        good = [r for r in requests if r["image"] == REQUEST["image"]]
        keys = {f"{r['cluster']}/{r['namespace']}/{r['app']}": r for r in requests}
        before = inventory(sandbox)
        profiles_before = set(before["Fargate profiles"])
        invoked_before = len(workflows.invocations())
        # When they are all POSTed at once
        outcomes, provision_seconds = all_at_once(workflows, lambda r: post_app(sandbox, workflows, r), requests)
        results = [json.loads(o["output"]) for o in outcomes if o["status"] == "SUCCEEDED"]
        failed = [o for o, r in zip(outcomes, requests, strict=True) if r not in good]
        profiles = managed_profiles(sandbox, set(namespaces))
        created_here = [p for p in profiles if p["fargateProfileName"] not in profiles_before]
        surfaced = [o for o in outcomes if "ResourceInUse" in json.dumps(o, default=str)]
        busy_retries = [
            i.error_type
            for i in workflows.invocations()[invoked_before:]
            if i.error_type == "ProfileOperationInProgress"
        ]
        # (each good app holds exactly its role, its profile and its rule; no failed app holds anything)
        held = our_holdings(sandbox, workflows, set(keys))
        expected: dict[str, list[str]] = {}
        for result in results:
            key = f"{result['request']['cluster']}/{result['request']['namespace']}/{result['request']['app']}"
            for resource in (
                f"podExecutionRole/{result['podExecutionRole']['name']}",
                f"fargateProfile/blog/{result['fargateProfile']['name']}",
                f"cacheRule/{result['cacheRule']['ecrRepositoryPrefix']}",
            ):
                expected.setdefault(resource, []).append(key)
        expected = {resource: sorted(apps) for resource, apps in expected.items()}
        # (what happened, recorded before it is judged; the teardown's figures are added below)
        row = figures.row(
            "concurrency",
            apps=APPS,
            namespaces=NAMESPACES,
            failing_on_purpose=FAILING,
            succeeded=sum(o["status"] == "SUCCEEDED" for o in outcomes),
            failed_as_planned=sum(o["status"] == "FAILED" and o.get("error") == "ImageNotFound" for o in failed),
            profiles_created=len(created_here),
            profiles_serving=len(profiles),
            resource_in_use_surfaced=len(surfaced),
            busy_retries=len(busy_retries),
            provision_seconds=round(provision_seconds, 1),
            holder_sets_exact=held == expected,
        )
        # Then the 15 good apps succeed, with at most one profile per namespace, none failing on
        # ResourceInUseException, the 5 others fail on the missing image, and the holder sets say exactly who uses what
        assert [
            o.get("cause") for o, r in zip(outcomes, requests, strict=True) if r in good and o["status"] != "SUCCEEDED"
        ] == []
        assert [o.get("error") for o in failed] == ["ImageNotFound"] * FAILING, [o.get("cause") for o in failed]
        assert len(profiles) <= NAMESPACES and {p["status"] for p in profiles} == {"ACTIVE"}
        assert sum(r["fargateProfile"]["created"] for r in results) <= len(created_here)
        assert all(pod["node"].startswith("fargate-") for r in results for pod in r["pods"])
        assert surfaced == []
        assert held == expected

        # When the 15 running apps are torn down at once through the API
        ended, teardown_seconds = all_at_once(workflows, lambda r: delete_app(sandbox, workflows, r), good)
        # Then every teardown succeeds and nothing is left: deployments, pods, their Fargate nodes, every profile
        # serving these namespaces unless an app outside them still uses it (a shared profile), and every hold
        after = inventory(sandbox)
        left = {
            kind: sorted(set(after[kind]) - set(before[kind]))
            for kind in ("Deployment", "ReplicaSet", "Pod", "Service", "Node")
        }
        kept_profiles = {
            p["fargateProfileName"]: still_used(sandbox, p["fargateProfileName"], set(namespaces))
            for p in managed_profiles(sandbox, set(namespaces))
        }
        unjustified = sorted(name for name, users in kept_profiles.items() if not users)
        holds_left = our_holdings(sandbox, workflows, set(keys))
        leftovers = [item for o in ended if o["status"] == "SUCCEEDED" for item in json.loads(o["output"])["leftovers"]]
        row.update(
            teardowns_succeeded=sum(o["status"] == "SUCCEEDED" for o in ended),
            left_after_teardown=sum(len(names) for names in left.values()) + len(unjustified),
            holds_left_after_teardown=sum(len(apps) for apps in holds_left.values()),
            teardown_leftovers=len(leftovers),
            teardown_seconds=round(teardown_seconds, 1),
        )
        assert [o.get("cause") for o in ended if o["status"] != "SUCCEEDED"] == []
        assert left == {kind: [] for kind in left} and unjustified == [], (left, kept_profiles)
        assert holds_left == {} and leftovers == []
