"""Drift: someone deletes a running app's Deployment by hand, and its owner sends the same request again. Past the
replay window (REPLAY_WINDOW_SECONDS, a client's retry of its POST), the same request runs again and re-applies the
app's objects at the same revision; within it, the request is answered by the provision that ran (issue: the same
POST was always answered as a replay, so the deleted Deployment stayed gone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from figures import Figures
from inventory_items import inventory_item
from reliability_support import (
    ENVIRONMENT,
    REQUEST,
    ROOT,
    TIME_SCALE,
    forget_kubernetes_clients,
    post_app,
    unique,
)

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

pytestmark = pytest.mark.xdist_group("reliability_drift")
# Long enough that the replay right after the provision falls inside it on a loaded machine (an API call is a cold
# start of the handler, about a second, several when both test workers run sandboxes).
WINDOW_SECONDS = 10


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    forget_kubernetes_clients()
    environment = {**ENVIRONMENT, "REPLAY_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=environment) as harness:
        forget_kubernetes_clients()
        yield harness
    forget_kubernetes_clients()


def deployments(sandbox: Sandbox, namespace: str) -> list[str]:
    assert sandbox.kubernetes is not None
    return [d["metadata"]["name"] for d in sandbox.kubernetes.objects("Deployment", namespace)]


def delete_by_hand(sandbox: Sandbox, namespace: str, app: str) -> None:
    """What `kubectl delete deployment <app>` does."""
    assert sandbox.kubernetes is not None
    code, answer = sandbox.kubernetes.api.handle(
        "DELETE",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{app}",
        {},
        "application/json",
        b"",
        agent="kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef",
    )
    assert code == 200, answer


def posted(sandbox: Sandbox, workflows: Workflows, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, started = post_app(sandbox, workflows, request)
    assert status in (200, 202), started
    return status, started


def test_the_same_request_past_the_window_re_applies_a_deployment_deleted_by_hand(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given a running app whose Deployment someone deleted by hand
    request = {**REQUEST, "namespace": unique("drift"), "app": unique("web")}
    _, first = posted(sandbox, workflows, request)
    assert workflows.wait(first["executionArn"], timeout_s=120)["status"] == "SUCCEEDED"
    delete_by_hand(sandbox, request["namespace"], request["app"])
    assert deployments(sandbox, request["namespace"]) == []

    # When, within the window, the same request is sent: the provision that ran answers it (a retry)
    status, replay = posted(sandbox, workflows, request)
    assert (status, replay["executionArn"], replay["replayed"]) == (200, first["executionArn"], True)
    # and past it, the same request runs again
    ended = workflows.describe(first["executionArn"])["stopDate"]
    time.sleep(max(0.0, (ended + timedelta(seconds=WINDOW_SECONDS + 0.5) - datetime.now(UTC)).total_seconds()))
    status, again = posted(sandbox, workflows, request)
    outcome = workflows.wait(again["executionArn"], timeout_s=120)

    # Then the Deployment is back, at the same revision, from the same pinned image
    assert (status, again["replayed"], again["executionName"]) == (202, False, f"{first['executionName']}-2")
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    assert deployments(sandbox, request["namespace"]) == [request["app"]]
    result = json.loads(outcome["output"])
    first_result = json.loads(workflows.describe(first["executionArn"])["output"])
    assert result["image"]["cached"] == first_result["image"]["cached"]
    assert result["pods"] and all(pod["node"].startswith("fargate-") for pod in result["pods"])
    item = inventory_item(sandbox, workflows, f"blog/{request['namespace']}/{request['app']}")
    assert (item["revision"], item["appState"], item["executionArn"]) == (1, "RUNNING", again["executionArn"])
