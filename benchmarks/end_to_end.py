"""Figure 5: the seed scenario end to end, ``fargate-app sandbox run --request examples/nginx.json`` (wall time of the
CLI process: interpreter, imports, sandbox start, API call, provision, stop). The CLI prints no timings of its own
start, so the breakdown comes from the same scenario run in process with the CLI's settings (its time scale and
profile delay): sandbox start, the workflow harness, each state of the provision (real seconds, scaled waits
included), and the stop.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.report import Figure, Row, median
from benchmarks.sandbox_runs import QUIET, ROOT, execute

GOAL_SECONDS = 20.0
REQUEST = ROOT / "examples" / "nginx.json"
_SUCCEEDED = re.compile(r"provision SUCCEEDED after ([0-9.]+) s")


def cli_settings() -> tuple[float, float]:
    """(time scale, profile seconds) the CLI's sandbox uses; the CLI's defaults if it cannot be imported."""
    try:
        from fargate_sandbox.session import PROFILE_SECONDS, TIME_SCALE
    except ImportError:
        return 0.1, 3.0
    return float(TIME_SCALE), float(PROFILE_SECONDS)


def _cli_run(executable: str) -> tuple[float, float | None]:
    started = time.monotonic()
    answer = subprocess.run(  # noqa: S603 - the project's own CLI
        [executable, "sandbox", "run", "--request", str(REQUEST), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    wall = time.monotonic() - started
    if answer.returncode != 0:
        raise RuntimeError(f"fargate-app sandbox run exited {answer.returncode}:\n{answer.stderr[-2000:]}")
    match = _SUCCEEDED.search(answer.stderr)
    return wall, float(match[1]) if match else None


def _in_process() -> dict[str, float]:
    """The same scenario in this process, timed step by step."""
    import json

    from fargate_sandbox.sandbox import Sandbox
    from fargate_sandbox.workflows import Workflows
    from kube_emulator import PodTiming

    time_scale, profile_seconds = cli_settings()
    phases: dict[str, float] = {}
    mark = time.monotonic()
    sandbox = Sandbox(
        profile_create_seconds=profile_seconds,
        profile_delete_seconds=profile_seconds,
        pod_timing=PodTiming.fargate(time_scale),
    ).start()
    try:
        phases["sandbox start"] = time.monotonic() - mark
        mark = time.monotonic()
        with Workflows(sandbox, ROOT / "template.yaml", time_scale=time_scale, environment=QUIET) as workflows:
            phases["workflow harness open"] = time.monotonic() - mark
            mark = time.monotonic()
            execution = execute(workflows, "ProvisionStateMachine", json.loads(REQUEST.read_text()))
            phases["provision"] = time.monotonic() - mark
            phases.update({f"  {state}": seconds for state, seconds in execution.state_seconds().items()})
            mark = time.monotonic()
    finally:
        sandbox.stop()
    phases["harness close + sandbox stop"] = time.monotonic() - mark
    return phases


def run(runs: int) -> Figure:
    figure = Figure(5, "Seed scenario end to end (sandbox run)", __doc__.replace("\n", " ").strip() if __doc__ else "")
    executable = shutil.which("fargate-app") or str(Path(ROOT / ".venv" / "bin" / "fargate-app"))
    time_scale, profile_seconds = cli_settings()
    if Path(executable).exists():
        samples = [_cli_run(executable) for _ in range(runs)]
        wall = median([wall for wall, _ in samples])
        provisions = [p for _, p in samples if p is not None]
        figure.rows.append(
            Row(
                "fargate-app sandbox run --request examples/nginx.json",
                wall,
                "s",
                f"<= {GOAL_SECONDS:.0f} s",
                wall <= GOAL_SECONDS,
                runs=runs,
                note=f"every run: {', '.join(f'{w:.1f}' for w, _ in samples)} s; the CLI reports the provision "
                f"itself at {median(provisions):.1f} s"
                if provisions
                else "",
            )
        )
    else:
        figure.error = f"{executable} not found: install the project (make install)"
    # Once: a second sandbox in the same process would meet the first one's cached clients (moto's state, too, is
    # per process), and the figure's goal is the CLI's wall time anyway.
    breakdowns = [_in_process()]
    for phase in breakdowns[0]:
        if not phase.startswith("  "):
            figure.rows.append(
                Row(f"in process: {phase}", median([b.get(phase, 0.0) for b in breakdowns]), "s", "", None, runs=1)
            )
    figure.details = [
        f"The CLI's sandbox: time scale {time_scale}, Fargate profile delay {profile_seconds} s (real).",
        "",
        "| provision state (in process, one run) | real seconds |",
        "| --- | --- |",
        *[
            f"| {phase.strip()} | {median([b.get(phase, 0.0) for b in breakdowns]):.3f} |"
            for phase in breakdowns[0]
            if phase.startswith("  ")
        ],
    ]
    return figure
