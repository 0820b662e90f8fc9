"""A fault of its own kind: the execution stopped mid-way. StopExecution ends an execution at once: no Catch runs, so
Compensate does not either (Step Functions developer guide, "Stopping executions": the execution is ABORTED).
The decided behaviour: the app's teardown cleans up after a stopped provision — DELETE /apps/… starts it (the API
tears down after the latest provision, even an aborted one), DeleteApp removes what ApplyApp applied, and
ReleaseFargateProfile finds the profile the stopped execution created by its ``fargate-app/created-for`` tag. The
per-cluster pod execution role and the per-upstream cache rule stay: they are shared, reused by the next provision."""

from __future__ import annotations

import time
from typing import Any

import pytest
from reliability_support import (
    REQUEST,
    created_since,
    delete_app,
    inventory,
    post_app,
    unique,
    without_shared_profiles,
)

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_stop")
SHARED_KINDS = {"IAM roles", "pull-through-cache rules", "ECR repositories"}


@pytest.mark.parametrize("stop_in", ["CheckFargateProfile", "WarmImageCache"])
def test_teardown_after_a_stopped_provision_leaves_nothing_of_the_app(
    stop_in: str, sandbox: Sandbox, workflows: Workflows, figures: Any
) -> None:
    # Given a provision of a new app in a new namespace, stopped once it reached the state
    request = {**REQUEST, "app": unique("stop"), "namespace": unique("stop"), "cachePrefix": unique("s")}
    # (the row is recorded now and completed with what each stage observed, so a failing stage still reports)
    row = figures.row(
        "faults",
        kind=f"execution stopped mid-way (StopExecution in {stop_in})",
        expected="cleaned by teardown",
        outcome="not reached",
        step=stop_in,
        error="",
        faults=0,
        retried=[],
    )
    without_shared_profiles(sandbox)  # one an earlier module of this process left would be reused, not created
    before = inventory(sandbox)
    if stop_in == "WarmImageCache":  # hold the warm long enough to stop the execution inside it
        sandbox.faults.hang_registry(r"/manifests/", 1, 3.0)
    status, started = post_app(sandbox, workflows, request)
    assert status == 202, started
    arn = started["executionArn"]
    deadline = time.monotonic() + 60
    while stop_in not in workflows.state_order(arn):
        assert time.monotonic() < deadline and workflows.describe(arn)["status"] == "RUNNING", workflows.state_order(
            arn
        )
        time.sleep(0.05)
    sandbox.boto3_client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped by test")
    stopped = workflows.wait(arn, timeout_s=30)
    left_by_stop = created_since(before, inventory(sandbox))
    row.update(
        faults=1,
        error=stopped["status"],
        outcome=f"{stopped['status']}, teardown not run",
        left_by_stop=sorted(f"{kind}: {', '.join(names)}" for kind, names in left_by_stop.items()),
    )
    assert stopped["status"] == "ABORTED"
    assert "Fargate profiles" in left_by_stop  # the stopped execution did create something, never compensated
    # When the app is deleted through the API
    status, teardown = delete_app(sandbox, workflows, request)
    assert status == 202, teardown
    outcome = workflows.wait(teardown["executionArn"], timeout_s=90)
    deadline = time.monotonic() + 30
    while (left := created_since(before, inventory(sandbox))).get("Fargate profiles") and time.monotonic() < deadline:
        time.sleep(0.1)
    app_leftovers = {kind: names for kind, names in left.items() if kind not in SHARED_KINDS and kind != "Namespace"}
    cleaned = outcome["status"] == "SUCCEEDED" and not app_leftovers
    row.update(
        outcome=(
            f"{stopped['status']} (no compensation); "
            + (
                "teardown then removed everything of the app"
                if cleaned
                else f"teardown {outcome['status']}, left {app_leftovers}"
            )
        ),
        left_after_teardown=sorted(f"{kind}: {', '.join(names)}" for kind, names in left.items()),
    )
    # Then the teardown succeeds and nothing of the app is left; only shared, reusable resources may remain
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    assert app_leftovers == {}, app_leftovers
