"""Every grant is needed, and enough: the scenarios run in one sandbox with the template's roles and
docs/eks-access.md's RBAC, with no call refused; then each grant in turn is taken away and the scenario that used
it must fail with AccessDenied or Forbidden naming the call.

The outcome of each mutation is written to ``IAM_RESULTS_DIR`` for docs/iam.md (``make iam``). ``make test`` sets
``IAM_GRANT_MUTATIONS=sample``: the scenarios, the usage checks and the first grant of each role and ClusterRole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import template_iam
from grant_mutations import Grant, IamGrant, KubernetesGrant, iam_grants, kubernetes_grants
from grant_scenarios import SCENARIOS, Scenario, ScenarioFailed

from fargate_sandbox import iam_policy
from fargate_sandbox.session import SandboxSession
from kube_emulator import PodTiming

ALL_GRANTS: list[Grant] = [*iam_grants(), *kubernetes_grants()]


def grants_to_mutate() -> list[Grant]:
    """Every grant, or with ``IAM_GRANT_MUTATIONS=sample`` the first grant of each principal.

    The whole proof runs a scenario per grant (about ten minutes of the two cores, `make iam`); the sample keeps, in
    `make test`, one removal per role and ClusterRole, so a principal whose refusals stopped reaching its scenario's
    failure is still caught there."""
    mode = os.environ.get("IAM_GRANT_MUTATIONS", "all")
    if mode == "all":
        return ALL_GRANTS
    if mode != "sample":
        raise pytest.UsageError(f"IAM_GRANT_MUTATIONS: {mode!r} is neither 'all' nor 'sample'")
    first: dict[str, Grant] = {}
    for grant in ALL_GRANTS:
        first.setdefault(grant.principal, grant)
    return list(first.values())


GRANTS = grants_to_mutate()
# Every grant: two sandboxes (one per xdist worker) share the mutations, each running the scenarios once first (a
# minute and a half). A sample is shorter than that: one sandbox runs it all.
WORKER_GROUPS = ("grants-a", "grants-b") if len(GRANTS) == len(ALL_GRANTS) else ("grants", "grants")


@dataclasses.dataclass
class Usage:
    """What each scenario's calls were, as the authorizers decided them."""

    aws: dict[str, list[dict[str, Any]]]
    kubernetes: dict[str, list[dict[str, Any]]]
    seconds: dict[str, float]

    def scenario_for(self, grant: Grant) -> Scenario | None:
        """The quickest scenario with a call that this grant alone allowed."""
        decisions = self.aws if isinstance(grant, IamGrant) else self.kubernetes
        using = [s for s in SCENARIOS if any(grant.allowed(d) for d in decisions.get(s.name, []))]
        return min(using, key=lambda scenario: self.seconds[scenario.name], default=None)


def decisions(session: SandboxSession) -> tuple[dict[Any, int], dict[Any, int]]:
    kubernetes = session.sandbox.kubernetes
    assert kubernetes is not None and kubernetes.api.authorizer is not None
    return dict(session.sandbox.iam.decisions), dict(kubernetes.api.authorizer.decisions)


def since(before: dict[Any, int], after: dict[Any, int]) -> list[dict[str, Any]]:
    return [
        {**dataclasses.asdict(record), "count": count - before.get(record, 0)}
        for record, count in after.items()
        if count > before.get(record, 0)
    ]


@dataclasses.dataclass
class Recording:
    aws: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    kubernetes: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@contextmanager
def pods_starting_for(session: SandboxSession, seconds: float) -> Iterator[None]:
    """Fargate taking ``seconds`` to run a pod while the block runs (the session's 2 s otherwise)."""
    kubernetes = session.sandbox.kubernetes
    assert kubernetes is not None
    controllers = kubernetes.controllers
    scheduler: Any = controllers.scheduler
    original = controllers.timing
    slow = dataclasses.replace(original, start_seconds=seconds)
    controllers.timing = scheduler.timing = slow
    try:
        yield
    finally:
        controllers.timing = scheduler.timing = original


def _read_while_pods_start(grant: Grant) -> bool:
    """CheckRollout reads a pod's events only while it is not running yet: the mutation of that grant must not race
    the pod's start (a cold CheckRollout on a loaded machine can come after the session's 2 s)."""
    return isinstance(grant, KubernetesGrant) and "events" in grant.resources


@contextmanager
def recorded(session: SandboxSession) -> Iterator[Recording]:
    """The decisions made while the block runs (filled in when it ends, however it ends)."""
    recording = Recording()
    aws_before, kube_before = decisions(session)
    try:
        yield recording
    finally:
        aws_after, kube_after = decisions(session)
        recording.aws, recording.kubernetes = since(aws_before, aws_after), since(kube_before, kube_after)


@pytest.fixture(scope="module")
def session() -> Iterator[SandboxSession]:
    # Per-namespace profiles: each scenario's namespace gets (and releases) a profile of its own, so no scenario's
    # grants depend on a profile an earlier scenario left (the shared strategy's profile is one for all).
    # A pod takes 2 s to run (Fargate's 60 s would be 0.6 s at this scale): every rollout's first check then finds
    # it still starting, so the rollout reads the pod events in every scenario that rolls out, not by chance of load.
    with SandboxSession(
        time_scale=0.01,
        profile_seconds=0.3,
        environment={"FARGATE_PROFILE_STRATEGY": "per-namespace"},
        pod_timing=PodTiming(node_seconds=0.4, start_seconds=2.0, grace_scale=0.01),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def outcomes() -> Iterator[list[dict[str, Any]]]:
    recorded: list[dict[str, Any]] = []
    yield recorded
    directory = os.environ.get("IAM_RESULTS_DIR")
    if directory and recorded:
        path = Path(directory) / f"grants-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded), encoding="utf-8")


@pytest.fixture(scope="module")
def usage(session: SandboxSession, outcomes: list[dict[str, Any]]) -> Usage:
    found = Usage({}, {}, {})
    for scenario in SCENARIOS:
        scenario.prepare(session)
        started = time.monotonic()
        with recorded(session) as calls:
            scenario.play(session)
        found.seconds[scenario.name] = time.monotonic() - started
        found.aws[scenario.name], found.kubernetes[scenario.name] = calls.aws, calls.kubernetes
    for grant in ALL_GRANTS:
        decided = found.aws if isinstance(grant, IamGrant) else found.kubernetes
        calls = sorted(
            {
                (scenario, _call(decision))
                for scenario, made in decided.items()
                for decision in made
                if grant.allowed(decision)
            }
        )
        outcomes.append({"kind": "usage", "grant": str(grant), "calls": calls})
    return found


def _call(decision: dict[str, Any]) -> str:
    if "action" in decision:
        return f"{decision['action']} {decision['resource']}"
    where = f" in {decision['namespace']}" if decision["namespace"] else ""
    group = f"{decision['api_group']}/" if decision["api_group"] else ""
    return f"{decision['verb']} {group}{decision['resource']}{where}"


@pytest.mark.parametrize(
    "scenario", [pytest.param(s, marks=pytest.mark.xdist_group(WORKER_GROUPS[0])) for s in SCENARIOS], ids=str
)
def test_every_scenario_runs_with_no_call_refused(scenario: Scenario, usage: Usage) -> None:
    refused = [d for d in usage.aws[scenario.name] + usage.kubernetes[scenario.name] if not d["allowed"]]
    assert refused == []


# Scenarios that leave the stack's pod role behind, tagged by their executions, and that delete it (compensation).
BEFORE = ("a_drifted_pod_role_is_repaired", "a_failed_apply_is_compensated")


@pytest.mark.parametrize("before", [pytest.param(b, marks=pytest.mark.xdist_group(WORKER_GROUPS[1])) for b in BEFORE])
def test_a_scenario_makes_the_same_calls_whatever_ran_before_it(
    before: str, session: SandboxSession, usage: Usage
) -> None:
    # Given a scenario run before, which changes the account
    earlier, scenario = (
        next(s for s in SCENARIOS if s.name == name) for name in (before, "a_wrong_upstream_credential_is_refused")
    )
    earlier.prepare(session)
    earlier.play(session)
    # When the credential scenario runs next, as the mutation test runs it
    scenario.prepare(session)
    with recorded(session) as calls:
        scenario.play(session)
    # Then it makes the calls it made in the usage run, no more, no fewer: a grant is tested with the calls it was
    # chosen for (the role existing or not decides whether it is created or tagged)
    assert _actions(calls.aws) == _actions(usage.aws[scenario.name])


@pytest.mark.xdist_group(WORKER_GROUPS[1])
def test_a_refusal_in_a_run_the_scenario_set_off_fails_it(session: SandboxSession, usage: Usage) -> None:
    # Given a scenario that creates a cache rule and never waits for the warm-cache run EventBridge starts for it,
    # and the validating function's role without its grant
    scenario = next(s for s in SCENARIOS if s.name == "a_cache_rule_made_by_hand_is_reused")
    grant = next(g for g in ALL_GRANTS if str(g) == "ValidateCacheRuleFunctionRole/ValidateRule")
    assert isinstance(grant, IamGrant)
    scenario.prepare(session)
    restore = grant.drop(session)
    try:
        # When the scenario is played
        with pytest.raises(ScenarioFailed) as failed:
            scenario.play(session)
    finally:
        restore()
    # Then the refused warm-cache run fails it, however quickly the scenario's own executions ended
    assert "WarmCacheStateMachine" in str(failed.value) and "ecr:ValidatePullThroughCacheRule" in str(failed.value)


def _actions(decisions: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(decision["principal"], decision["action"]) for decision in decisions}


@pytest.mark.parametrize(
    "grant",
    [pytest.param(g, marks=pytest.mark.xdist_group(WORKER_GROUPS[i % 2])) for i, g in enumerate(GRANTS)],
    ids=str,
)
def test_without_the_grant_a_scenario_fails_with_a_refusal(
    grant: Grant, session: SandboxSession, usage: Usage, outcomes: list[dict[str, Any]]
) -> None:
    scenario = usage.scenario_for(grant)
    assert scenario is not None, f"{grant} allowed no call of any scenario: remove it, or add the scenario needing it"
    scenario.prepare(session)  # as the administrator, with every grant: the start the usage run had
    restore = grant.drop(session)
    if isinstance(grant, IamGrant) and grant.function is not None:
        # Fresh execution environments, as after a deployment: nothing cached from a call made with the grant.
        session.workflows.dispatcher.recycle(grant.function)
    pods = pods_starting_for(session, 15.0) if _read_while_pods_start(grant) else nullcontext()
    try:
        with pods, recorded(session) as calls, pytest.raises(ScenarioFailed) as failed:
            scenario.play(session)
    finally:
        restore()
        session.sandbox.faults.clear()
    refusals = [d for d in (calls.aws if isinstance(grant, IamGrant) else calls.kubernetes) if grant.denied(d)]
    outcomes.append(
        {
            "kind": "mutation",
            "grant": str(grant),
            "scenario": scenario.name,
            "detected": bool(refusals),
            "failure": str(failed.value)[:400],
        }
    )
    assert refusals, f"{scenario.name} failed without a refusal of {grant}: {failed.value}"


@pytest.mark.xdist_group(WORKER_GROUPS[0])
def test_every_action_and_resource_of_a_statement_is_used(usage: Usage) -> None:
    made = [decision for calls in usage.aws.values() for decision in calls if decision["allowed"]]
    unused = []
    for grant in iam_grants():
        statement = next(
            s for s in template_iam.statements() if (s.role, s.policy, s.sid) == (grant.role, grant.policy, grant.sid)
        )
        mine = [d for d in made if d["principal"] == grant.role and f"{grant.policy}/{grant.sid}" in d["statements"]]
        unused += [f"{grant}: {a}" for a in statement.actions if not any(d["action"] == a for d in mine)]
        unused += [
            f"{grant}: {r}"
            for r in statement.resources
            if not any(iam_policy.resource_matches(r, d["resource"], {}) for d in mine)
        ]
    assert unused == []
