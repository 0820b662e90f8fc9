"""The four thin handlers, invoked as Lambda invokes them, against the emulator (only DescribeCluster is replaced)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kube_helpers import ACCOUNT, REGION, endpoint_of, fargate_scheduler, step_event

from fargate_app.config import reset_settings
from fargate_app.kube import client

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"
CONTEXT = SimpleNamespace(
    function_name="ApplyAppFunction",
    memory_limit_in_mb=512,
    invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ApplyAppFunction",
    aws_request_id="6f1c9b4e-0000-4000-8000-000000000000",
)


def handler(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"kube_handler_{name}", FUNCTIONS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("ROLLOUT_GRACE_SECONDS", "120")
    reset_settings()
    yield
    reset_settings()
    client.DEFAULT_APIS.forget()


def test_provision_then_teardown_through_the_handlers(start_emulator, lambda_environment, monkeypatch):
    # Given a cluster whose "DescribeCluster" answers with the emulator's endpoint and CA
    emulator = start_emulator(scheduler=fargate_scheduler())
    endpoint = endpoint_of(emulator)
    monkeypatch.setattr(client.DEFAULT_APIS, "_source", lambda cluster: endpoint)
    client.DEFAULT_APIS.forget()

    # When the state machine's steps run in order
    applied = handler("apply_app")(step_event(), CONTEXT)
    rollout = handler("check_rollout")({**step_event(), "startedAt": applied["appliedAt"]}, CONTEXT)
    deleted = handler("delete_app")(step_event(), CONTEXT)
    gone = handler("check_pods_gone")({**step_event(), "startedAt": deleted["deletedAt"]}, CONTEXT)

    # Then each returns its documented JSON
    assert applied["applied"] is True and applied["namespace"] == "fargate"
    assert {"kind": "Deployment", "name": "demo-app", "namespace": "fargate"} in applied["objects"]
    assert rollout["deployment"] == {
        "namespace": "fargate",
        "name": "demo-app",
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
    }
    assert rollout["pods"][0]["node"].startswith("fargate-")
    assert [ref["kind"] for ref in deleted["deleted"]] == ["Ingress", "Service", "Deployment"]
    assert gone == {"namespace": "fargate", "name": "demo-app"}


def test_a_malformed_step_input_is_invalid_request(lambda_environment):
    from fargate_app.errors import InvalidRequest

    event = step_event()
    del event["image"]
    with pytest.raises(InvalidRequest, match="image"):
        handler("apply_app")(event, CONTEXT)
