"""Figure 3: state transitions, Lambda invocations and detection delay of one happy provision and its teardown, with a
Fargate profile that takes 120 s to become ACTIVE (and 120 s to be deleted).

The sandbox runs the template's ASL with its own polling environment (POLL_INITIAL_SECONDS, POLL_MAX_SECONDS as in
template.yaml), time scaled: Waits and Retry pauses last ``time_scale`` of their seconds and the profile takes
``120 s × time_scale``, so the two keep AWS's ratio. Transitions are the states entered plus the Task retries (each is
billed). The detection delay is the time from the profile reaching ACTIVE (its CreateFargateProfile call, recorded by
an interceptor, + 120 s) to the answer of the check that saw it, in AWS seconds: the scaled Wait seconds in between
are counted unscaled and everything else as measured. The same for the teardown (DeleteFargateProfile → gone). A
sweep of creation times (30-300 s) on the production backoff formula (``fargate_app.aws.eks.next_wait``) shows the
worst case, which one measured point cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count
from types import SimpleNamespace

from benchmarks.report import Figure, Row, median
from benchmarks.sandbox_runs import SEED_REQUEST, Execution, execute, last_end, sandbox_workflows, unique

PROFILE_SECONDS = 120.0
TRANSITIONS_GOAL = 30
DELAY_FRACTION_GOAL, DELAY_CAP_SECONDS = 0.10, 20.0
SWEEP = range(30, 301)


def _delay(execution: Execution, since: float, wait_state: str, seconds_path: str, scale: float) -> float:
    known = last_end(execution.invocations, "CheckFargateProfileFunction")
    waited = execution.waited_seconds(wait_state, seconds_path)
    unscaled_elapsed = (known - since) - waited * scale + waited
    return unscaled_elapsed - PROFILE_SECONDS


def production_waits(initial: int, maximum: int) -> Iterator[int]:
    """The Wait seconds the workflow asks for, check after check (EnsureFargateProfile gives attempt 0's)."""
    from fargate_app.aws.eks import next_wait

    settings = SimpleNamespace(poll_initial_seconds=initial, poll_max_seconds=maximum)
    for attempt in count():
        yield next_wait(settings, attempt)  # type: ignore[arg-type]


def sweep(waits: Callable[[], Iterator[int]], creation_seconds: range = SWEEP) -> dict[int, tuple[int, float]]:
    """Creation time → (checks until the one that sees ACTIVE, delay in seconds) for a schedule of waits."""
    result = {}
    for target in creation_seconds:
        elapsed, checks = 0.0, 0
        for wait in waits():
            elapsed += wait
            checks += 1
            if elapsed >= target:
                break
        result[target] = (checks, elapsed - target)
    return result


def run(runs: int, time_scale: float, poll_initial: int = 5, poll_max: int = 30) -> Figure:
    figure = Figure(3, "Transitions and detection delay, 120 s profile", __doc__.split("\n\n", 1)[1].replace("\n", " "))
    provisions: list[Execution] = []
    teardowns: list[Execution] = []
    delays: dict[str, list[float]] = {"provision": [], "teardown": []}
    with sandbox_workflows(time_scale, PROFILE_SECONDS) as (_sandbox, workflows, calls):
        for _ in range(runs):
            provision = execute(workflows, "ProvisionStateMachine", {**SEED_REQUEST, "namespace": unique("bench")})
            result = provision.output
            profile = result["fargateProfile"]["name"]
            delays["provision"].append(
                _delay(
                    provision,
                    calls.created[profile],
                    "WaitForProfileActive",
                    "$.fargateProfile.nextWaitSeconds",
                    time_scale,
                )
            )
            teardown = execute(workflows, "TeardownStateMachine", {"request": result["request"], "provision": result})
            delays["teardown"].append(
                _delay(
                    teardown,
                    calls.deleted[profile],
                    "WaitForProfileDeleted",
                    "$.profileRelease.profile.nextWaitSeconds",
                    time_scale,
                )
            )
            provisions.append(provision)
            teardowns.append(teardown)

    delay_goal = min(DELAY_FRACTION_GOAL * PROFILE_SECONDS, DELAY_CAP_SECONDS)
    for label, executions in (("provision", provisions), ("teardown", teardowns)):
        transitions = median([e.transitions for e in executions])
        figure.rows.append(
            Row(
                f"{label}: state transitions",
                transitions,
                "transitions",
                f"<= {TRANSITIONS_GOAL}",
                transitions <= TRANSITIONS_GOAL,
                runs=runs,
                note=f"states entered: {', '.join(executions[0].states_entered)}",
            )
        )
        figure.rows.append(
            Row(
                f"{label}: Lambda invocations",
                median([len(e.invocations) for e in executions]),
                "invocations",
                "",
                None,
                runs=runs,
            )
        )
        delay = median(delays[label])
        figure.rows.append(
            Row(
                f"{label}: detection delay",
                delay,
                "s (AWS)",
                f"<= {delay_goal:.0f} s",
                delay <= delay_goal,
                baseline=PROFILE_SECONDS,
                ratio=delay / PROFILE_SECONDS,
                runs=runs,
                note=f"every run: {', '.join(f'{d:.1f}' for d in delays[label])} s",
            )
        )

    checks = [e.states_entered.count("CheckFargateProfile") for e in provisions]
    fixed = median([e.transitions for e in provisions]) - 3 * median(checks)
    swept = sweep(lambda: production_waits(poll_initial, poll_max))
    worst_delay = max(swept.items(), key=lambda item: item[1][1])
    worst_fraction = max(swept.items(), key=lambda item: item[1][1] / item[0])
    most_checks = max(swept.items(), key=lambda item: item[1][0])
    figure.rows.append(
        Row(
            "sweep 30-300 s: worst detection delay",
            worst_delay[1][1],
            "s (AWS)",
            f"<= {DELAY_CAP_SECONDS:.0f} s",
            worst_delay[1][1] <= DELAY_CAP_SECONDS,
            note=f"at a {worst_delay[0]} s creation; worst fraction {worst_fraction[1][1] / worst_fraction[0]:.0%} "
            f"at {worst_fraction[0]} s; most checks {most_checks[1][0]} ({fixed + 3 * most_checks[1][0]:.0f} "
            f"transitions) at {most_checks[0]} s",
        )
    )
    figure.details = [
        f"Schedule: POLL_INITIAL_SECONDS={poll_initial}, POLL_MAX_SECONDS={poll_max}: waits "
        f"{', '.join(str(w) for w, _ in zip(production_waits(poll_initial, poll_max), range(8), strict=False))}, … s. "
        f"Transitions outside the profile loop: {fixed:.0f}; each check adds 3 (Wait, Task, Choice).",
        "",
        "Per-state real seconds of the first provision (scaled waits included):",
        "",
        "| state | seconds |",
        "| --- | --- |",
        *[f"| {state} | {seconds:.3f} |" for state, seconds in provisions[0].state_seconds().items()],
    ]
    return figure
