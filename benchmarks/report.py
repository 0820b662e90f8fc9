"""What every benchmark returns, the statistics shared by all of them, and the table and Markdown they print.

A figure is a list of rows; each row holds the median of repeated runs, the baseline measured in the same run (when
the figure has one), their ratio, the goal and whether the row meets it. Benchmarks never assert: a figure that
misses its goal is reported as a miss, with the proposal that would fix it in the figure's notes.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Row:
    subject: str
    value: float
    unit: str
    goal: str
    met: bool | None  # None: informational, no goal of its own
    baseline: float | None = None
    ratio: float | None = None
    runs: int = 1
    note: str = ""

    def verdict(self) -> str:
        return {True: "ok", False: "MISS", None: "-"}[self.met]


@dataclass
class Figure:
    number: int
    title: str
    method: str  # how it was measured, one paragraph for docs/benchmarks.md
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # Markdown lines: breakdowns, proposals
    seconds: float = 0.0  # how long the benchmark itself took
    error: str | None = None

    @property
    def met(self) -> bool | None:
        verdicts = [row.met for row in self.rows if row.met is not None]
        if self.error is not None:
            return False
        return all(verdicts) if verdicts else None


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise ValueError("no samples")
    return float(statistics.median(samples))


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("inf")


def ratio_row(subject: str, value: float, baseline: float, goal: float, **extra: Any) -> Row:
    """``value / baseline`` as a row whose goal is at most ``goal``."""
    quotient = ratio(value, baseline)
    return Row(subject, quotient, "x", f"<= {goal}", quotient <= goal, baseline=baseline, **extra)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return ""
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


# --- the machine -------------------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """nproc, CPU model, memory, Python and OS, as docs/benchmarks.md describes the machine."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": f"{cpu} ({platform.machine()})",
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "os": platform.platform(),
        "commit": _git_head(),
    }


def _git_head() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - read-only; git from PATH
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607 - read-only
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


# --- output ------------------------------------------------------------------------------------------------------
HEADERS = ("#", "figure", "subject", "median", "unit", "baseline", "ratio", "runs", "goal", "verdict")


def _cells(figure: Figure) -> list[tuple[str, ...]]:
    if figure.error is not None:
        return [(str(figure.number), figure.title, "(benchmark failed)", "", "", "", "", "", "", "ERROR")]
    return [
        (
            str(figure.number),
            figure.title if index == 0 else "",
            row.subject,
            fmt(row.value),
            row.unit,
            fmt(row.baseline),
            fmt(row.ratio),
            str(row.runs),
            row.goal,
            row.verdict(),
        )
        for index, row in enumerate(figure.rows)
    ]


def text_table(figures: Sequence[Figure]) -> str:
    rows = [HEADERS, *[cells for figure in figures for cells in _cells(figure)]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown(figures: Sequence[Figure], described: dict[str, str], total_seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); do not edit by hand. Each value is the median of the runs",
        "shown; each ratio divides it by a baseline measured in the same run on the same machine. Benchmarks never",
        "assert: a figure that misses its goal says MISS here.",
        "",
        "What the figures called for, each measured here before and after: the layers ship python3.12",
        "bytecode and the kubernetes layer only the API classes the steps use; no Powertools Tracer (X-Ray SDK) and",
        "botocore clients without boto3's import (docs/observability.md) — figure 1; the Fargate profile is polled by",
        "its state's own Retry, one transition per check and at most 10 s between checks — figure 3; a busy cluster is",
        "retried with short capped pauses so the next profile starts soon after EKS frees it — figure 6; figure 4",
        "copies 60 MB so that the copy, not start-up, is timed.",
        "",
        f"Run of {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {total_seconds:.0f} s in all.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {key} | {_escape(value)} |" for key, value in described.items()],
        "",
        "## Figures",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
        *["| " + " | ".join(_escape(c) for c in cells) + " |" for figure in figures for cells in _cells(figure)],
        "",
    ]
    for figure in figures:
        lines += [f"## {figure.number}. {figure.title}", "", figure.method, ""]
        if figure.error is not None:
            lines += ["```", figure.error.strip(), "```", ""]
        notes = [f"- {row.subject}: {row.note}" for row in figure.rows if row.note]
        if notes:
            lines += [*notes, ""]
        if figure.details:
            lines += [*figure.details, ""]
        lines += [f"_Benchmark time: {figure.seconds:.0f} s._", ""]
    return "\n".join(lines)
