"""The workflows end to end: the real ASL on moto's interpreter, the real handlers in process, in one sandbox.

The harness sets the template's environment process-wide while it is open, so it lives for one module at a time
(and the module's tests share an xdist group): nothing else in the worker runs while AWS_ENDPOINT_URL points at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from figures import Figures, record_polls
from inventory_items import no_app_holds_anything

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows
from kube_emulator import PodTiming

ROOT = Path(__file__).resolve().parents[2]
# Waits and retry pauses run at 1/100 of their time; the sandbox's profile delays are real seconds.
TIME_SCALE = 0.01
# Fargate's pod start at 6/100 (3.6 s) and a pod's 30 s grace period at 12/100 (3.6 s): longer than the sandbox's own
# overhead between an apply or a delete and its first check (real seconds, not scaled: a module's first check is a
# cold start of the Kubernetes step, over a second and up to about three when the other test worker is busy; 1.8 s
# was not always enough), so every poll turns at least twice, as it does in AWS.
POD_TIMING = PodTiming(node_seconds=40 * 0.06, start_seconds=60 * 0.06, grace_scale=0.12)
# A profile takes 2 s (real) here: one stuck for 6 s ends in PollTimeout (the wait is measured in real seconds).
ENVIRONMENT = {
    "ROLLOUT_GRACE_SECONDS": "2",
    "PROFILE_WAIT_TIMEOUT_SECONDS": "6",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(profile_create_seconds=2.0, profile_delete_seconds=1.0, pod_timing=POD_TIMING) as running:
        yield running


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=ENVIRONMENT) as harness:
        no_app_holds_anything(sandbox, harness)
        yield harness
        record_polls(figures, harness, "e2e")


@pytest.fixture(autouse=True)
def _disarm_faults(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.clear()
