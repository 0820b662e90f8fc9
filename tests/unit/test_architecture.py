"""docs/architecture.md's invariants, checked on the source: what may import what, no import cycles, and every
reference in the docs resolving inside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "fargate_app": ROOT / "layers" / "core" / "fargate_app",
    "fargate_sandbox": ROOT / "sandbox" / "fargate_sandbox",
    "kube_emulator": ROOT / "sandbox" / "kube_emulator",
    "fargate_app_cli": ROOT / "fargate_app_cli",
}
# What each package must never import, at module level or inside a function, typing-only or not.
FORBIDDEN = {
    "fargate_app": {"fargate_sandbox", "kube_emulator", "fargate_app_cli"},
    # Implemented independently of production: an emulator reusing production's logic could only agree with it.
    "fargate_sandbox": {"fargate_app", "fargate_app_cli"},
    "kube_emulator": {"fargate_app", "fargate_app_cli", "fargate_sandbox"},
}
MARKDOWN_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


def module_name(path: Path, package: str) -> str:
    parts = path.relative_to(PACKAGES[package].parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path, package): path for package, folder in PACKAGES.items() for path in folder.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known or name.split(".")[0] in PACKAGES}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start] & graph.keys())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor] & graph.keys()))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_detection_finds_a_cycle_and_only_cycles() -> None:
    # Given a graph with one cycle of three modules and a module outside it
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    # Then exactly that cycle is found
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_there_are_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 80  # every module was read
    assert cycles(graph) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_it_must_not(package: str) -> None:
    offending = {
        name: sorted(target for target in targets if target.split(".")[0] in FORBIDDEN[package])
        for name, targets in import_graph().items()
        if name.split(".")[0] == package
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_every_error_a_state_machine_can_see_is_in_the_design_s_error_contract() -> None:
    # Given the error classes of fargate_app.errors (their names are what Lambda reports and the ASL matches)
    from fargate_app import errors

    names = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.FargateAppError) and value.__module__ == errors.__name__
    } - {"FargateAppError", "RetryableError"}
    # Then docs/design.md's section 4 names each one
    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("## 4. Errors") : design.index("## 5.")]
    assert len(names) > 30
    assert sorted(name for name in names if f"`{name}`" not in section) == []


def tracked_files(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def test_every_link_in_the_docs_resolves_inside_the_repository() -> None:
    broken = []
    for document in tracked_files("*.md"):
        for target in MARKDOWN_LINK.findall(document.read_text()):
            resolved = (document.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{document.relative_to(ROOT)} → {target}")
    assert broken == []


def test_nothing_points_outside_the_repository_or_at_tracker_numbers() -> None:
    outside = re.compile(r"\.\./shared|(?<![\w/])design\.md §")
    tracker = re.compile(r"\b[Ii]ssues? #?\d+\b")
    found = []
    for path in tracked_files("*.py", "*.md", "*.json", "*.yaml", "*.toml", "Makefile"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line) or tracker.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert found == []
