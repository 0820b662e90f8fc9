"""Reliability suite: one sandbox and one workflow harness per module, and the session-wide credential scan.

Figures are recorded with the ``figures`` fixture (tests/figures.py). The credential scan (``reliability_secret_scan``)
is registered when this file loads, during collection, so it watches every test the process runs afterwards, whatever
its directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reliability_secret_scan
from figures import Figures, record_polls
from inventory_items import no_app_holds_anything
from reliability_support import ENVIRONMENT, ROOT, TIME_SCALE, forget_kubernetes_clients

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows
from kube_emulator import PodTiming

# Fargate's pod start and stop, scaled: Running 60 s after creation in AWS, so the rollout poll turns at least twice
# there. The sandbox's own time between an apply and the first check is real, not scaled: the Kubernetes steps'
# cold starts, over a second each, and several when ten executions start at once (each concurrent invocation is a
# new environment, lambda_dispatch.py). At 6/100 (3.6 s) that margin holds for a provision that runs beside a few
# others; a module that starts ten or twenty at once sets its own, slower POD_TIME_SCALE (measured with the
# determinism module alone: 4-5 s from ApplyApp's start to CheckRollout's, so at 1/10 (6 s) a few of its provisions
# saw their pod Running at the first check under make reliability's load). Waits and retry pauses run at
# reliability_support.TIME_SCALE; everything production logs, DEBUG included, goes through the credential scan
# (reliability_support.ENVIRONMENT).
POD_TIME_SCALE = 0.06
SCAN_PLUGIN = reliability_secret_scan.PLUGIN_NAME


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(SCAN_PLUGIN):
        config.pluginmanager.register(reliability_secret_scan.SecretScanPlugin(), SCAN_PLUGIN)


@pytest.fixture(scope="module")
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    pod_time_scale = getattr(request.module, "POD_TIME_SCALE", POD_TIME_SCALE)
    with Sandbox(
        profile_create_seconds=1.0, profile_delete_seconds=0.5, pod_timing=PodTiming.fargate(pod_time_scale)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    forget_kubernetes_clients()
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=ENVIRONMENT) as harness:
        forget_kubernetes_clients()
        no_app_holds_anything(sandbox, harness)
        yield harness
        record_polls(figures, harness, "reliability")
    forget_kubernetes_clients()


@pytest.fixture(autouse=True)
def _disarm_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
