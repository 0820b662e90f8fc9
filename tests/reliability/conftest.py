"""Reliability suite (issue 8): one sandbox and one workflow harness per module, the figures the report is made of,
and the session-wide credential scan.

Figures: tests record rows with the ``figures`` fixture; at the end of the session each process writes them (with
the outcome of every reliability test and the scan's statistics) to ``$RELIABILITY_RESULTS_DIR/<worker>.json`` when
that variable is set — ``make reliability`` sets it and ``tools/reliability_report.py`` turns the files into
docs/reliability.md. The credential scan (``reliability_secret_scan``) is registered when this file loads, during
collection, so it watches every test the process runs afterwards, whatever its directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability_secret_scan

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.workflows import Workflows

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR_VARIABLE = "RELIABILITY_RESULTS_DIR"
# Waits and retry pauses run at 1/100 of their time; the sandbox's profile delays are real seconds.
TIME_SCALE = 0.01
ENVIRONMENT = {
    "POLL_INITIAL_SECONDS": "1",
    "POLL_MAX_SECONDS": "2",
    "ROLLOUT_GRACE_SECONDS": "2",
    # Everything production logs, DEBUG included, goes through the credential scan.
    "POWERTOOLS_LOG_LEVEL": "DEBUG",
}
_PLUGIN_NAME = "reliability-secret-scan"


class Figures:
    """Rows of the report, by section, plus the outcome of each reliability test."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.outcomes: dict[str, str] = {}

    def add(self, section: str, **row: Any) -> None:
        self.rows.setdefault(section, []).append(row)


_figures = Figures()


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(reliability_secret_scan.SecretScanPlugin(), _PLUGIN_NAME)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = _figures.outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _figures.outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    plugin = session.config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is not None:
        plugin.unregister()
    results_dir = os.environ.get(RESULTS_DIR_VARIABLE)
    if not results_dir:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(results_dir) / f"{worker}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "worker": worker,
        "rows": _figures.rows,
        "outcomes": _figures.outcomes,
        "secretScan": reliability_secret_scan.statistics().to_json(),
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True))


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _figures


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(profile_create_seconds=1.0, profile_delete_seconds=0.5) as running:
        yield running


@pytest.fixture(scope="module")
def workflows(sandbox: Sandbox) -> Iterator[Workflows]:
    # Each module has its own sandbox (new ports): the Kubernetes API clients and the EKS token's STS client that
    # production caches for the life of a Lambda container must not point at the previous module's sandbox.
    _forget_kubernetes_clients()
    with Workflows(sandbox, ROOT / "template.yaml", time_scale=TIME_SCALE, environment=ENVIRONMENT) as harness:
        _forget_kubernetes_clients()
        yield harness
    _forget_kubernetes_clients()


def _forget_kubernetes_clients() -> None:
    from fargate_app.kube.auth import reset_sts_clients
    from fargate_app.kube.client import DEFAULT_APIS

    DEFAULT_APIS.forget()
    reset_sts_clients()


@pytest.fixture(autouse=True)
def _disarm_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
