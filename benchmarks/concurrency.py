"""Figure 6: 20 apps provisioned concurrently in 4 namespaces (5 apps each) of one sandbox cluster, against one app.

Each namespace needs its own Fargate profile, and EKS creates one profile at a time per cluster, so the best possible
makespan is four profile waits in a row plus what one app costs besides its profile wait: ideal = 4·P + (T₁ − P),
where P is the profile delay and T₁ the single app's makespan measured in the same sandbox just before. Time is
scaled as in figure 3 (profile 120 s × time scale); makespans are real seconds of this run and, in the notes, in
profile waits. Profiles created are counted from the CreateFargateProfile calls that started a profile.
"""

from __future__ import annotations

import time

from benchmarks.report import Figure, Row, median, ratio
from benchmarks.sandbox_runs import SEED_REQUEST, sandbox_workflows, unique

PROFILE_SECONDS = 120.0
APPS, NAMESPACES = 20, 4
IDEAL_SLACK = 1.25  # "a small constant": within a quarter of the ideal


def _makespan(workflows: object, requests: list[dict[str, object]], timeout: float) -> tuple[float, list[str]]:
    started = time.monotonic()
    arns = [workflows.start("ProvisionStateMachine", request) for request in requests]  # type: ignore[attr-defined]
    failures = []
    deadline = started + timeout  # one budget for all: a stuck run must not cost timeout × apps
    for arn in arns:
        outcome = workflows.wait(arn, timeout_s=max(1.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if outcome["status"] != "SUCCEEDED":
            failures.append(f"{outcome['status']}: {outcome.get('error')} {str(outcome.get('cause'))[:300]}")
    return time.monotonic() - started, failures


def run(runs: int, time_scale: float) -> Figure:
    figure = Figure(
        6,
        "20 concurrent apps in 4 namespaces",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip() if __doc__ else "",
    )
    profile_real = PROFILE_SECONDS * time_scale
    singles, many, created, attempts, all_failures = [], [], [], [], []
    with sandbox_workflows(time_scale, PROFILE_SECONDS) as (_sandbox, workflows, calls):
        for _ in range(runs):
            single, failures = _makespan(workflows, [{**SEED_REQUEST, "namespace": unique("solo")}], timeout=300)
            all_failures += failures
            namespaces = [unique(f"ns{n}") for n in range(NAMESPACES)]
            requests = [
                {**SEED_REQUEST, "namespace": namespaces[i % NAMESPACES], "app": f"app-{i:02d}"} for i in range(APPS)
            ]
            before_created, before_attempts = len(calls.created), calls.create_attempts
            makespan, failures = _makespan(workflows, requests, timeout=240)
            all_failures += failures
            singles.append(single)
            many.append(makespan)
            created.append(len(calls.created) - before_created)
            attempts.append(calls.create_attempts - before_attempts)
    if all_failures:
        raise RuntimeError(f"{len(all_failures)} provision(s) failed: {all_failures[:3]}")

    single, makespan = median(singles), median(many)
    ideal = NAMESPACES * profile_real + (single - profile_real)
    figure.rows += [
        Row("1 app: makespan", single, "s", "", None, runs=runs, note=f"{single / profile_real:.2f} profile waits"),
        Row(
            f"{APPS} apps / {NAMESPACES} namespaces: makespan",
            makespan,
            "s",
            "",
            None,
            baseline=single,
            ratio=ratio(makespan, single),
            runs=runs,
            note=f"{makespan / profile_real:.2f} profile waits; every run: {', '.join(f'{m:.1f}' for m in many)} s",
        ),
        Row(
            "makespan / ideal (4·P + T1 − P)",
            ratio(makespan, ideal),
            "x",
            f"<= {IDEAL_SLACK}",
            ratio(makespan, ideal) <= IDEAL_SLACK,
            baseline=ideal,
            runs=runs,
            note=f"P = {profile_real:.2f} s real (120 s × {time_scale})",
        ),
        Row(
            "Fargate profiles created",
            median(created),
            "profiles",
            f"= {NAMESPACES}",
            median(created) == NAMESPACES,
            runs=runs,
            note=f"CreateFargateProfile calls (409s of a busy cluster included): {median(attempts):.0f}",
        ),
    ]
    return figure
