"""docs/iam.md's judge (tools/iam_report.py): `make iam` needs every grant removed and detected; `make test` removes
one grant per principal and needs each of those detected, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_reliability_report import tool

from fargate_sandbox.stack_roles import StackRoles, stack_roles
from fargate_sandbox.template_model import Deployment

ROOT = Path(__file__).resolve().parents[2]
CALL = {
    "origin": "tests/e2e/test_workflows.py::test_the_walkthrough",
    "allowed": True,
    "count": 1,
    "principal": "ApiFunctionRole",
    "statements": [],
    "action": "states:StartExecution",
    "resource": "arn:aws:states:us-west-2:111122223333:stateMachine:provision",
}


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return tool("iam_report")


@pytest.fixture(scope="module")
def stack(report: ModuleType) -> StackRoles:
    return stack_roles(
        ROOT / "template.yaml", Deployment(report.ACCOUNT, report.REGION, parameter_overrides={"ClusterName": "x"})
    )


def usage(*grants: str) -> list[dict[str, Any]]:
    return [{"kind": "usage", "grant": grant, "calls": [["scenario", "a call"]]} for grant in grants]


def removed(grant: str, detected: bool = True) -> dict[str, Any]:
    return {"kind": "mutation", "grant": grant, "scenario": "scenario", "detected": detected, "failure": "Forbidden"}


def mutation_goals(report: ModuleType, stack: StackRoles, grants: list[dict[str, Any]], sample: bool) -> list[str]:
    _, missed = report.render(stack, [CALL], [], grants, sample=sample)
    return [problem for problem in missed if problem.startswith("mutation score")]


def test_the_whole_proof_needs_every_grant_removed(report: ModuleType, stack: StackRoles) -> None:
    grants = [*usage("A/one", "A/two", "B/one"), removed("A/one"), removed("B/one")]
    assert mutation_goals(report, stack, grants, sample=False) == ["mutation score 2/3"]


def test_a_sample_needs_each_removed_grant_detected_not_every_grant_removed(
    report: ModuleType, stack: StackRoles
) -> None:
    grants = [*usage("A/one", "A/two", "B/one"), removed("A/one"), removed("B/one")]
    assert mutation_goals(report, stack, grants, sample=True) == []
    assert mutation_goals(report, stack, [*grants[:3], removed("A/one"), removed("B/one", detected=False)], True) == [
        "mutation score 1/2"
    ]
    assert mutation_goals(report, stack, grants[:3], sample=True) == ["mutation score 0/0"]


def test_check_writes_nothing_and_fails_on_a_missed_goal(report: ModuleType, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "decisions-1.json").write_text(json.dumps({"aws": [CALL], "kubernetes": []}))
    (results / "grants-1.json").write_text(json.dumps([*usage("A/one"), removed("A/one", detected=False)]))
    out = tmp_path / "iam.md"
    assert report.main(["--results", str(results), "--out", str(out), "--check"]) == 1
    assert not out.exists()
