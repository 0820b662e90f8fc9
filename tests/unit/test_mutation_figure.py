"""The mutation figure kept per module (tools/mutation_report.py, tools/reliability_report.py): a run replaces the
verdicts of the modules it judged completely, and a module whose source changed since is stale, out of the score."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_reliability_report import tool

OLD, NEW = "aaaa", "bbbb"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return tool("reliability_report")


@pytest.fixture(scope="module")
def mutation() -> ModuleType:
    return tool("mutation_report")


def survivor(name: str, equivalent: str = "") -> dict[str, Any]:
    return {"name": name, "where": "x.py:1", "change": "`a` → `b`", "old": "a", "equivalent": equivalent}


def run_of(commit: str, modules: dict[str, dict[str, int]], sources: dict[str, str], survivors: list[Any]) -> Any:
    """What mutation_results returns for one run."""
    return {
        "commit": commit,
        "mutmut": "3.7.0",
        "modules": modules,
        "sources": sources,
        "survivors": survivors,
        "untested_mutants": [],
        "killed_by_new_tests": [],
    }


def test_a_run_replaces_only_the_modules_it_judged_completely(mutation: ModuleType) -> None:
    # Given verdicts for two modules, then a run that judged `a` again completely and `b` only in part
    earlier = mutation.merge(
        None,
        run_of(
            "c1",
            {"fargate_app.a": {"killed": 8, "survived": 2}, "fargate_app.b": {"killed": 5, "survived": 5}},
            {"fargate_app.a": OLD, "fargate_app.b": OLD},
            [survivor("fargate_app.a.x_f__mutmut_1"), survivor("fargate_app.b.x_g__mutmut_1")],
        ),
    )
    later = mutation.merge(
        earlier,
        run_of(
            "c2",
            {"fargate_app.a": {"killed": 10}, "fargate_app.b": {"killed": 1, "not checked": 9}},
            {"fargate_app.a": NEW, "fargate_app.b": NEW},
            [],
        ),
    )
    # Then `a` has the new verdicts, source and commit; `b` keeps its earlier ones
    assert later["modules"] == {"fargate_app.a": {"killed": 10}, "fargate_app.b": {"killed": 5, "survived": 5}}
    assert later["sources"] == {"fargate_app.a": NEW, "fargate_app.b": OLD}
    assert later["measured_at"] == {"fargate_app.a": "c2", "fargate_app.b": "c1"}
    assert [m["name"] for m in later["survivors"]] == ["fargate_app.b.x_g__mutmut_1"]
    assert (later["killed"], later["counts"]) == (15, {"killed": 15, "survived": 5})


def test_a_module_without_mutants_is_judged_by_being_covered(mutation: ModuleType) -> None:
    merged = mutation.merge(None, run_of("c1", {}, {"fargate_app.kube": OLD}, []))
    assert merged["sources"] == {"fargate_app.kube": OLD} and merged["modules"] == {}


def test_a_changed_module_is_stale_and_out_of_the_score(report: ModuleType, tmp_path: Path) -> None:
    # Given a package of two modules, both measured, then one of them edited
    package = tmp_path / "fargate_app"
    (package / "kube").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "kube" / "__init__.py").write_text("")
    measured = {
        "commit": "c1",
        "mutmut": "3.7.0",
        "modules": {"fargate_app.a": {"killed": 9, "survived": 1}},
        "sources": {
            "fargate_app.a": report.source_digest(package / "a.py"),
            "fargate_app.kube": report.source_digest(package / "kube" / "__init__.py"),
        },
        "measured_at": {"fargate_app.a": "c1", "fargate_app.kube": "c1"},
        "survivors": [survivor("fargate_app.a.x_f__mutmut_3")],
    }
    figures = report.mutation_figures(measured, package)
    assert report.stale_modules(measured, package) == []
    assert figures["measured"].startswith("90.0 % (9 killed of 10")
    (package / "a.py").write_text("A = 2\n")
    # When the figure is made again, then `a` is stale: left out, and the goal is not met whatever the score
    stale = report.mutation_figures(measured, package)
    assert report.stale_modules(measured, package) == ["fargate_app.a"]
    assert stale["measured"].startswith("0.0 % (0 killed of 0")
    assert "1 modules changed since they were measured (10 mutants" in stale["measured"]
    assert not stale["met"]
    assert any(line.startswith("| fargate_app.a | c1 (stale) | 10 | 9 | 1 |") for line in stale["section"])


def test_a_module_never_measured_is_stale(report: ModuleType, tmp_path: Path) -> None:
    package = tmp_path / "fargate_app"
    package.mkdir()
    (package / "new.py").write_text("B = 1\n")
    measured = {"commit": "c1", "mutmut": "3.7.0", "modules": {}, "sources": {}, "survivors": []}
    figures = report.mutation_figures(measured, package)
    assert report.stale_modules(measured, package) == ["fargate_app.new"]
    assert not figures["met"]
    assert any(line.startswith("| fargate_app.new | never (stale) |") for line in figures["section"])


def test_todays_triage_applies_to_survivors_of_earlier_runs(mutation: ModuleType) -> None:
    survivors = [
        survivor("fargate_app.a.x_f__mutmut_1"),
        survivor("fargate_app.a.x_f__mutmut_2", "was equivalent"),
        {**survivor("fargate_app.a.x_f__mutmut_3", "a log line"), "by_rule": True},
    ]
    mutation.retriage(survivors, {"equivalent": {"fargate_app.a.x_f__mutmut_1": "same behaviour"}})
    assert [m["equivalent"] for m in survivors] == ["same behaviour", "", "a log line"]


def test_survivors_judged_again_leave_the_survivors_only_when_killed_on_the_same_source(mutation: ModuleType) -> None:
    # Given recorded verdicts: three survivors of `a`, one of `b` whose source changed since
    names = [f"fargate_app.a.x_f__mutmut_{n}" for n in (1, 2, 3)] + ["fargate_app.b.x_g__mutmut_1"]
    measured = {
        "modules": {"fargate_app.a": {"killed": 7, "survived": 3}, "fargate_app.b": {"killed": 4, "survived": 1}},
        "sources": {"fargate_app.a": OLD, "fargate_app.b": OLD},
        "measured_at": {"fargate_app.a": "c1", "fargate_app.b": "c1"},
        "survivors": [{**survivor(name), "status": "survived"} for name in names],
    }
    # When a run of today's tests judges them again: two of `a` killed (one by a timeout), one survives; `b`'s killed
    found = {
        "fargate_app.a.x_f__mutmut_1": "killed",
        "fargate_app.a.x_f__mutmut_2": "timeout",
        "fargate_app.a.x_f__mutmut_3": "survived",
        "fargate_app.b.x_g__mutmut_1": "killed",
    }
    later = mutation.rejudge(measured, found, {"fargate_app.a": OLD, "fargate_app.b": NEW}, "c2")
    # Then only `a`'s killed mutants move out of the survivors, into their module's verdicts
    assert [m["name"] for m in later["survivors"]] == ["fargate_app.a.x_f__mutmut_3", "fargate_app.b.x_g__mutmut_1"]
    assert later["modules"] == {
        "fargate_app.a": {"killed": 8, "survived": 1, "timeout": 1},
        "fargate_app.b": {"killed": 4, "survived": 1},
    }
    assert (later["killed"], later["counts"]) == (13, {"killed": 12, "survived": 2, "timeout": 1})
    assert later["rejudged"] == {"fargate_app.a.x_f__mutmut_1": "c2", "fargate_app.a.x_f__mutmut_2": "c2"}
    # And the modules keep the source and commit their verdicts are of
    assert (later["sources"], later["measured_at"]) == (measured["sources"], measured["measured_at"])


def test_a_later_complete_run_of_a_module_supersedes_its_rejudged_mutants(mutation: ModuleType) -> None:
    measured = {
        **mutation.merge(None, run_of("c1", {"fargate_app.a": {"killed": 1}}, {"fargate_app.a": OLD}, [])),
        "rejudged": {"fargate_app.a.x_f__mutmut_1": "c2", "fargate_app.b.x_g__mutmut_1": "c2"},
    }
    later = mutation.merge(measured, run_of("c3", {"fargate_app.a": {"killed": 2}}, {"fargate_app.a": NEW}, []))
    assert later["rejudged"] == {"fargate_app.b.x_g__mutmut_1": "c2"}
