"""Executions in the sandbox, measured: states, transitions, Lambda invocations, per-state times and profile events.

Time is scaled (``Workflows(time_scale=…)``): Wait states and Retry pauses last ``time_scale`` of their seconds, while
everything else — the handlers, the interpreter, the sandbox's AWS and Kubernetes — runs in real time, as it would in
AWS. The sandbox's Fargate profile delay is real time too, so a profile that takes P seconds in AWS is given
``P × time_scale`` here: the waits and the profile stay in the same ratio. To read a run in AWS seconds, the scaled
Wait seconds are scaled back and the rest is kept as measured (``unscaled_seconds``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fargate_sandbox.aws_protocol import AwsRequest
from fargate_sandbox.lambda_dispatch import Invocation
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows
from kube_emulator import PodTiming

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = "blog"
# The handlers' INFO logs would drown the table; the level changes nothing else (polling stays the template's).
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
SEED_REQUEST = {
    "cluster": CLUSTER,
    "app": "demo-app",
    "namespace": "fargate",
    "image": "public.ecr.aws/nginx/nginx:stable",
}


@dataclass
class ProfileCalls:
    """When the workflows called CreateFargateProfile / DeleteFargateProfile (time.time()), by profile name: the
    latest life of each name (a profile deleted and created again under its name, as the shared profile is by one
    provision and teardown after another, starts anew)."""

    created: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    profiles_started: int = 0
    create_attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: AwsRequest) -> None:
        if request.service != "eks" or request.operation not in ("CreateFargateProfile", "DeleteFargateProfile"):
            return None
        now = time.time()
        with self._lock:
            if request.operation == "CreateFargateProfile":
                self.create_attempts += 1
                name = json.loads(request.body or b"{}").get("fargateProfileName", "")
                # The first call of a life starts the profile; a busy cluster's 409s and a retry's replay do not.
                if name not in self.created or self.deleted.pop(name, None) is not None:
                    self.created[name] = now
                    self.profiles_started += 1
            else:
                self.deleted.setdefault(request.path.rstrip("/").rsplit("/", 1)[-1], now)
        return None


@contextmanager
def sandbox_workflows(
    time_scale: float, profile_seconds: float, environment: dict[str, str] | None = None
) -> Iterator[tuple[Sandbox, Workflows, ProfileCalls]]:
    """A sandbox whose profiles take ``profile_seconds`` (AWS seconds) × ``time_scale`` to create and to delete, the
    template's workflows with their own environment (no polling override; ``environment`` added), and a recorder of
    the profile calls."""
    with Sandbox(
        profile_create_seconds=profile_seconds * time_scale,
        profile_delete_seconds=profile_seconds * time_scale,
        pod_timing=PodTiming.fargate(time_scale),
    ) as sandbox:
        without_profiles(sandbox)
        calls = ProfileCalls()
        remove = sandbox.intercept_aws(calls)
        try:
            settings = {**QUIET, **(environment or {})}
            with Workflows(sandbox, ROOT / "template.yaml", time_scale=time_scale, environment=settings) as workflows:
                yield sandbox, workflows, calls
        finally:
            remove()


def without_profiles(sandbox: Sandbox, timeout: float = 300) -> None:
    """Delete (as the administrator) every Fargate profile of the cluster: moto's state is per process, so a figure's
    earlier sandbox leaves its profiles to the next one, whose apps would reuse the shared one instead of waiting for
    it, or meet EKS's 10-profile quota early."""
    eks = sandbox.boto3_client("eks")
    deadline = time.monotonic() + timeout
    while profiles := sandbox.fargate_profiles(CLUSTER):
        if time.monotonic() > deadline:
            raise RuntimeError(f"profiles of an earlier sandbox still there: {profiles}")
        for profile in profiles:
            if profile["status"] != "DELETING":
                try:
                    eks.delete_fargate_profile(clusterName=CLUSTER, fargateProfileName=profile["fargateProfileName"])
                except eks.exceptions.ResourceInUseException:
                    break  # another profile is CREATING or DELETING: EKS takes one at a time
                except eks.exceptions.ResourceNotFoundException:
                    continue  # it finished deleting since the listing
        time.sleep(0.1)


@contextmanager
def sandbox_aws_environment(sandbox: Sandbox) -> Iterator[None]:
    """The production package, called in this process, talks to the sandbox's AWS as its administrator (the harness
    gives each Lambda function its own environment, not this process)."""
    from fargate_app.aws.clients import reset_clients

    variables = {
        "AWS_ENDPOINT_URL": sandbox.endpoint_url,
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": sandbox.credentials[0],
        "AWS_SECRET_ACCESS_KEY": sandbox.credentials[1],
    }
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    reset_clients()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_clients()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Execution:
    arn: str
    outcome: dict[str, Any]
    history: list[dict[str, Any]]
    invocations: list[Invocation]  # of this execution's time window (executions measured one at a time)
    started: float
    finished: float

    @property
    def output(self) -> dict[str, Any]:
        return dict(json.loads(self.outcome.get("output") or "{}"))

    @property
    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history if e["type"].endswith("StateEntered")]

    @property
    def transitions(self) -> int:
        """Billed state transitions: every state entered, plus every retry of a Task (each is a transition)."""
        tasks = sum(1 for e in self.history if e["type"] == "TaskStateEntered")
        return len(self.states_entered) + max(0, len(self.invocations) - tasks)

    def waited_seconds(self, state: str, seconds_path: str) -> float:
        """The Wait seconds the ASL asked for in every entry of ``state`` (unscaled)."""
        total = 0.0
        for event in self.history:
            details = event.get("stateEnteredEventDetails") or {}
            if event["type"] == "WaitStateEntered" and details.get("name") == state:
                value: Any = json.loads(details.get("input") or "{}")
                for key in seconds_path.removeprefix("$.").split("."):
                    value = value[key]
                total += float(value)
        return total

    def state_seconds(self) -> dict[str, float]:
        """Real seconds spent in each state (entered → exited, summed over loops), in order of first entry."""
        spent: dict[str, float] = {}
        entered: dict[str, datetime] = {}
        for event in self.history:
            kind = event["type"]
            if kind.endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                entered[name] = event["timestamp"]
                spent.setdefault(name, 0.0)
            elif kind.endswith("StateExited"):
                name = event["stateExitedEventDetails"]["name"]
                if name in entered:
                    spent[name] += (event["timestamp"] - entered.pop(name)).total_seconds()
        return spent


def execute(workflows: Workflows, machine: str, payload: dict[str, Any], timeout: float = 300) -> Execution:
    """Start, wait, and collect what the figures read. Raises RuntimeError if it did not succeed."""
    before = len(workflows.invocations())
    started = time.time()
    arn = workflows.start(machine, payload)
    outcome = workflows.wait(arn, timeout_s=timeout)
    finished = time.time()
    if outcome["status"] != "SUCCEEDED":
        raise RuntimeError(f"{machine} {outcome['status']}: {outcome.get('error')} {outcome.get('cause')}")
    return Execution(arn, outcome, workflows.history(arn), workflows.invocations()[before:], started, finished)


def last_end(invocations: list[Invocation], function: str) -> float:
    """When the last invocation of ``function`` answered (the workflow knows what it returned)."""
    ends = [i.started_at + i.duration_seconds for i in invocations if i.function == function]
    if not ends:
        raise RuntimeError(f"no invocation of {function}")
    return max(ends)
