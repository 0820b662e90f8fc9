"""Which tests record a reliability figure before they assert anything (docs/reliability.md, "figures recorded before
their assertion").

A figure recorded after the test's assertions only exists when they passed: a failing run would report nothing, or
the value of an earlier run, instead of its bad value. So every test function that records a row (``figures.add`` or
``figures.row``) must do it before its first ``assert``/``pytest.raises`` — helpers it calls may check their own
preconditions. Read from the source with :mod:`ast`, not by running the tests.

    python tools/figure_audit.py            # prints the offenders; exit 1 if any
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDERS = {"add", "row"}


@dataclass(frozen=True)
class Recording:
    test: str  # path::function
    first_record: int  # line
    first_assert: int | None  # line of the first assertion, if any

    @property
    def recorded_first(self) -> bool:
        return self.first_assert is None or self.first_record < self.first_assert


def _is_record(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in RECORDERS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "figures"
    )


def _is_assertion(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert):
        return True
    # pytest.raises(...) as a context manager or a call judges too
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "raises"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "pytest"
    )


def recordings(path: Path) -> list[Recording]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or not function.name.startswith("test_"):
            continue
        # Nested functions (a helper defined inside the test) run when called; their lines still count in order.
        records = [node.lineno for node in ast.walk(function) if _is_record(node)]
        if not records:
            continue
        asserts = [node.lineno for node in ast.walk(function) if _is_assertion(node)]
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        found.append(Recording(f"{where}::{function.name}", min(records), min(asserts) if asserts else None))
    return found


def audit(tests: Path = ROOT / "tests") -> list[Recording]:
    return [recording for path in sorted(tests.rglob("test_*.py")) for recording in recordings(path)]


def main() -> int:
    found = audit()
    late = [r for r in found if not r.recorded_first]
    print(f"{len(found) - len(late)}/{len(found)} tests that record a figure record it before asserting")
    for recording in late:
        print(f"  {recording.test}: recorded at line {recording.first_record}, asserted at {recording.first_assert}")
    return 1 if late else 0


if __name__ == "__main__":
    sys.exit(main())
