"""``python -m benchmarks``: run every figure, print the table and write docs/benchmarks.md.

    python -m benchmarks                 # everything (what `make bench` runs)
    python -m benchmarks --only 1 3      # some figures
    python -m benchmarks --runs 3 --out /tmp/bench.md

Each figure runs in its own child interpreter (``--child N``): moto's backends, the workflow harness's patches and
the production package's cached clients are per process, and a figure must not inherit another's sandbox. A figure
that fails is reported as ERROR with its traceback in the Markdown, and the others still run. The exit status is 0
whatever the verdicts (benchmarks measure, they do not gate); 2 if a figure could not be measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# The handlers' INFO logs would bury the table; the Logger reads its level once, when fargate_app is first imported.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from benchmarks.report import Figure, Row, machine, markdown, text_table

ROOT = Path(__file__).resolve().parents[1]


def _figures(runs: int, time_scale: float) -> dict[int, tuple[str, Callable[[], Figure]]]:
    from benchmarks import (
        api_reads,
        cold_import,
        concurrency,
        end_to_end,
        layer_size,
        profiles,
        real_clients,
        transitions,
        warm_vs_skopeo,
    )

    few = max(1, min(runs, 3))  # the sandbox figures take seconds per run
    return {
        1: ("cold import", lambda: cold_import.run(runs)),
        2: ("layer sizes", layer_size.run),
        3: ("transitions", lambda: transitions.run(few, time_scale)),
        4: ("warm vs skopeo", lambda: warm_vs_skopeo.run(runs)),
        5: ("end to end", lambda: end_to_end.run(few)),
        # Every run a batch of 20 in the same sandbox, as people use `sandbox serve` (a second batch once met
        # SSLEOFError, when the sandbox servers listened with socketserver's backlog of 5).
        6: ("concurrency", lambda: concurrency.run(few, concurrency.TIME_SCALE, informational_scale=time_scale)),
        7: ("profiles at cluster scale", profiles.run),
        8: ("real clients", lambda: real_clients.run(few)),
        9: ("API calls", api_reads.run),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions of the quick figures (sandbox ones: ≤ 3)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.02,
        help="Wait/Retry scale of figure 3 (figure 6 runs at 0.1, and at this one for information)",
    )
    parser.add_argument("--only", type=int, nargs="*", help="figure numbers to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown report to write")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    figures_available = _figures(args.runs, args.time_scale)
    if args.child is not None:  # one figure, written as JSON for the parent
        _, measure = figures_available[args.child]
        try:
            figure = measure()
        except Exception:
            figure = Figure(args.child, figures_available[args.child][0], "", error=traceback.format_exc())
        args.child_out.write_text(json.dumps(dataclasses.asdict(figure)))
        return 0

    started = time.monotonic()
    figures: list[Figure] = []
    for number, (name, _) in figures_available.items():
        if args.only and number not in args.only:
            continue
        print(f"[bench] figure {number}: {name}…", file=sys.stderr, flush=True)
        began = time.monotonic()
        figure = _run_child(number, name, args)
        figure.seconds = time.monotonic() - began
        print(f"[bench] figure {number}: {figure.seconds:.0f} s", file=sys.stderr, flush=True)
        figures.append(figure)
    total = time.monotonic() - started

    print(text_table(figures))
    for figure in figures:
        if figure.error:
            print(f"\nfigure {figure.number} failed:\n{figure.error}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(figures, machine(), total))
    print(f"\n{total:.0f} s; written to {args.out}")
    return 2 if any(figure.error for figure in figures) else 0


def _run_child(number: int, name: str, args: argparse.Namespace) -> Figure:
    """The figure measured by a child interpreter; its output (handler logs and all) goes to our stderr."""
    with tempfile.TemporaryDirectory(prefix="bench-figure-") as workdir:
        out = Path(workdir) / "figure.json"
        command = [sys.executable, "-m", "benchmarks", "--child", str(number), "--child-out", str(out)]
        command += ["--runs", str(args.runs), "--time-scale", str(args.time_scale)]
        child = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, check=False)  # noqa: S603 - ourselves
        if not out.exists():
            return Figure(number, name, "", error=f"the child interpreter exited {child.returncode} without a result")
        document = json.loads(out.read_text())
    document["rows"] = [Row(**row) for row in document["rows"]]
    return Figure(**document)


if __name__ == "__main__":
    sys.exit(main())
