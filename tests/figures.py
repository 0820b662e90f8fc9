"""The figures of docs/reliability.md, recorded by any test of the run (reliability, e2e, sandbox, unit).

Tests record rows with the ``figures`` fixture (tests/conftest.py); at the end of the session each pytest process
writes them, with the outcome of every test and the credential scan's statistics when the scan ran, to
``$RELIABILITY_RESULTS_DIR/<worker>.json`` when that variable is set — ``make reliability`` sets it and
``tools/reliability_report.py`` turns the files into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

RESULTS_DIR_VARIABLE = "RELIABILITY_RESULTS_DIR"


class Figures:
    """Rows of the report, by section, plus the outcome of each test."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.outcomes: dict[str, str] = {}

    def add(self, section: str, **row: Any) -> None:
        self.rows.setdefault(section, []).append(row)

    def row(self, section: str, **values: Any) -> dict[str, Any]:
        """A row recorded now and completed as the test measures more (the rows are written at the session's end):
        a test records what it observed before it asserts, so a failing run still reports its bad value."""
        row = dict(values)
        self.rows.setdefault(section, []).append(row)
        return row


FIGURES = Figures()


def record_outcome(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = FIGURES.outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            FIGURES.outcomes[report.nodeid] = report.outcome


def write_results(scan_statistics: dict[str, Any] | None) -> None:
    results_dir = os.environ.get(RESULTS_DIR_VARIABLE)
    if not results_dir:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(results_dir) / f"{worker}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "worker": worker,
        "rows": FIGURES.rows,
        "outcomes": FIGURES.outcomes,
        "secretScan": scan_statistics or {},
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True))


def record_polls(figures: Figures, workflows: Any, suite: str) -> None:
    """For every execution of a workflow harness that reached a poll, how many times the poll checked: a row per
    execution (Step Functions semantics figure: a poll that never turns hides what its second turn would read)."""
    polls = {
        "ProvisionStateMachine": "CheckRolloutFunction",
        "TeardownStateMachine": "CheckPodsGoneFunction",
    }
    machines = {arn: logical for logical, arn in workflows.state_machine_arns.items()}
    for execution in workflows.executions():
        machine_arn = execution.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
        function_logical = polls.get(machines.get(machine_arn, ""))
        if function_logical is None:
            continue
        function_arn = workflows.template.functions[function_logical].arn
        history = workflows.history(execution)
        checks = sum(
            1
            for event in history
            if event["type"] == "LambdaFunctionScheduled"
            and event["lambdaFunctionScheduledEventDetails"]["resource"] == function_arn
        )
        if checks:
            name = execution.rsplit(":", 1)[1]
            figures.add("polls", suite=suite, poll=function_logical.removesuffix("Function"), checks=checks, name=name)
