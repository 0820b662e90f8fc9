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
from reliability_support import ENVIRONMENT, ROOT, TIME_SCALE, forget_kubernetes_clients

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows
from kube_emulator import PodTiming

# Fargate's pod start and stop at 1/10 (6 s, 3 s): longer than the sandbox's own overhead between an apply or a
# delete and its first check (real seconds, not scaled: a cold start of the Kubernetes step is over a second, several
# when ten executions start at once while the other test worker runs sandboxes too; at 1/50 a quarter of the
# provisions, at 1/20 still 6 of 40, saw their pod Running at the first check), so every poll turns at least twice,
# as it does in AWS. Waits and retry pauses run at reliability_support.TIME_SCALE; everything production logs, DEBUG
# included, goes through the credential scan (reliability_support.ENVIRONMENT).
POD_TIME_SCALE = 0.1
SCAN_PLUGIN = reliability_secret_scan.PLUGIN_NAME


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(SCAN_PLUGIN):
        config.pluginmanager.register(reliability_secret_scan.SecretScanPlugin(), SCAN_PLUGIN)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        profile_create_seconds=1.0, profile_delete_seconds=0.5, pod_timing=PodTiming.fargate(POD_TIME_SCALE)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox, figures: Figures) -> Iterator[Workflows]:
    forget_kubernetes_clients()
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=ENVIRONMENT) as harness:
        forget_kubernetes_clients()
        yield harness
        record_polls(figures, harness, "reliability")
    forget_kubernetes_clients()


@pytest.fixture(autouse=True)
def _disarm_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
