"""docs/reliability.md's judge (tools/reliability_report.py): a figure that comes out bad, or does not come out at all,
is a missed goal — never a shorter table that still reads as met."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def tool(name: str) -> ModuleType:
    """A module of tools/ (not a package: the tools run as scripts)."""
    sys.path.insert(0, str(TOOLS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS))


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return tool("reliability_report")


def data(**rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rows": rows, "scan": {}, "outcomes": {}, "aws": [], "kubernetes": []}


def fault_rows(report: ModuleType) -> list[dict[str, Any]]:
    return [{"kind": kind, "outcome": outcome, "faults": 1} for kind, outcome in report.EXPECTED_FAULTS.items()]


def missed_named(report: ModuleType, prefix: str, **rows: list[dict[str, Any]]) -> bool:
    _, missed = report.render(data(**rows))
    return any(name.startswith(prefix) for name in missed)


def test_every_expected_fault_with_its_outcome_meets_the_goal(report: ModuleType) -> None:
    assert not missed_named(report, "Faults", faults=fault_rows(report))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda rows: rows[1:],  # a kind went missing
        lambda rows: [{**rows[0], "outcome": "FAILED KubernetesConflict"}, *rows[1:]],  # not the expected outcome
        lambda rows: [{**rows[0], "faults": 0}, *rows[1:]],  # the fault never fired
        lambda rows: [*rows, {"kind": "a kind nobody expects", "outcome": "compensated", "faults": 1}],
    ],
    ids=["missing kind", "other outcome", "never fired", "unknown kind"],
)
def test_a_fault_row_that_is_missing_or_not_as_expected_misses_the_goal(report: ModuleType, spoil: Any) -> None:
    assert missed_named(report, "Faults", faults=spoil(fault_rows(report)))


def update_rows(report: ModuleType) -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "status": "SUCCEEDED" if expected == report.UPDATED else "FAILED",
            "error": "" if expected == report.UPDATED else "KubernetesConflict",
            "rolled_back_to": "app-1" if expected == report.ROLLED_BACK else "",
            "running_expected_revision": True,
            "neighbour_untouched": True,
            "deleted": [],
        }
        for kind, expected in report.EXPECTED_UPDATES.items()
    ]


def test_every_update_case_ending_as_expected_meets_the_goal(report: ModuleType) -> None:
    assert not missed_named(report, "Updates", updates=update_rows(report))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda rows: rows[1:],  # a case went missing
        lambda rows: [{**rows[0], "deleted": ["Deployment updates/web"]}, *rows[1:]],  # the failure deleted the app
        lambda rows: [{**rows[0], "running_expected_revision": False}, *rows[1:]],
        lambda rows: [{**rows[0], "neighbour_untouched": False}, *rows[1:]],
        lambda rows: [{**row, "rolled_back_to": ""} for row in rows],  # failed updates that did not roll back
        lambda rows: [{**row, "status": "FAILED"} for row in rows],  # the updates that should succeed failed
    ],
    ids=["missing case", "deleted", "revision not running", "neighbour touched", "no rollback", "updates failed"],
)
def test_an_update_row_that_is_missing_or_not_as_expected_misses_the_goal(report: ModuleType, spoil: Any) -> None:
    assert missed_named(report, "Updates", updates=spoil(update_rows(report)))


def test_a_figure_never_recorded_misses_its_goal(report: ModuleType) -> None:
    # Given a run that recorded nothing (its tests failed before measuring, say)
    _, missed = report.render(data())
    # Then every measured figure is missed, none is met by default
    for prefix in ("Updates", "Replays", "Concurrency: 20 apps", "Concurrency: busy", "Profiles", "Security: checkov"):
        assert any(name.startswith(prefix) for name in missed), prefix


def test_a_bad_input_that_got_through_or_created_something_misses_the_goal(report: ModuleType) -> None:
    refused = [
        {"case": f"case-{n}", "path": "API POST /apps", "field": "f", "rule": "r", "refused": True} for n in range(100)
    ]
    clean = [{"path": path, "created": [], "started": 0} for path in report.BAD_INPUT_PATHS]
    assert not missed_named(report, "Bad input", bad_input=refused, bad_input_effects=clean)
    let_through = [{**refused[0], "refused": False}, *refused[1:]]
    assert missed_named(report, "Bad input", bad_input=let_through, bad_input_effects=clean)
    created = [{**clean[0], "created": ["IAM roles: x"]}, *clean[1:]]
    assert missed_named(report, "Bad input", bad_input=refused, bad_input_effects=created)


def test_every_summary_row_has_a_goal(report: ModuleType) -> None:
    text, missed = report.render(data())
    assert "Report rows without a goal" not in missed
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows and all(goal.strip() for _, goal, _, _ in rows[1:])


def test_every_test_that_records_a_figure_records_it_before_asserting() -> None:
    # A figure recorded after the assertions exists only when they pass: a failing run would report nothing.
    figure_audit = tool("figure_audit")
    found = figure_audit.audit()
    assert len(found) >= 19
    assert [r.test for r in found if not r.recorded_first] == []


def test_the_audit_sees_a_figure_recorded_after_an_assertion(tmp_path: Path) -> None:
    figure_audit = tool("figure_audit")
    (tmp_path / "test_late.py").write_text(
        "def test_late(figures):\n    value = 1\n    assert value == 1\n    figures.add('x', value=value)\n\n\n"
        "def test_early(figures):\n    row = figures.row('x', value=None)\n    row.update(value=1)\n    assert row\n"
    )
    found = {r.test.rsplit("::", 1)[1]: r.recorded_first for r in figure_audit.recordings(tmp_path / "test_late.py")}
    assert found == {"test_late": False, "test_early": True}
