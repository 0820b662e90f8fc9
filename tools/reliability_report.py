"""Write docs/reliability.md from the reliability suite's results.

    RELIABILITY_RESULTS_DIR=/tmp/r pytest tests/reliability tests/e2e tests/sandbox -n 2 --dist loadgroup
    python tools/reliability_report.py --results /tmp/r --out docs/reliability.md

Each pytest process wrote ``<worker>.json`` (tests/reliability/conftest.py): the rows the tests recorded, the outcome
of every reliability test and the credential scan's statistics. This merges them, checks each figure against the
issue's goal, writes the Markdown report and exits 1 when a goal is missed or a reliability test did not pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import figure_audit

from fargate_sandbox import authorization_records

GOALS = {
    "bad_input": 100,  # distinct invalid requests
    "busy_retries": 5,  # ProfileOperationInProgress retried while 20 apps provision at once (today 0: one profile)
    "provision_seconds": 150,  # 20 apps at once, first request to last end (today about 65 s on 2 cores)
    "teardown_seconds": 90,  # their 20 teardowns (today about 35 s)
    # no more skipped checks than today's, each with its reason (56 since the app inventory's table, 57 since the
    # holders table: CKV_AWS_119 on each, a customer-managed key, skipped with its reason in template.yaml)
    "checkov_skips": 57,
    "bytes_scanned": 100_000,  # capture on: the scan read the suite's output (today about 700 kB)
}
# Every fault kind the suite injects and the outcome it must have (tests/reliability/
# test_reliability_faults.py and test_reliability_stop.py): a kind that goes missing is a missed goal, not a shorter
# table.
SURVIVED, COMPENSATED = "survived: app Running", "compensated"
CLEANED = "ABORTED (no compensation); teardown then removed everything of the app"
EXPECTED_FAULTS = {
    "throttling: iam:GetRole (EnsurePodExecutionRole)": SURVIVED,
    "throttling: eks:DescribeCluster (EnsureFargateProfile)": SURVIVED,
    "throttling: eks:ListFargateProfiles": SURVIVED,
    "throttling: eks:DescribeFargateProfile": SURVIVED,
    "throttling: eks:CreateFargateProfile": SURVIVED,
    "throttling: ec2:DescribeRouteTables": SURVIVED,
    "throttling: ecr:DescribePullThroughCacheRules": SURVIVED,
    "throttling: ecr:CreatePullThroughCacheRule": SURVIVED,
    "throttling: ecr:ValidatePullThroughCacheRule": SURVIVED,
    "throttling: secretsmanager:DescribeSecret (credential check)": SURVIVED,
    "throttling: ecr:GetAuthorizationToken (WarmImageCache)": SURVIVED,
    "DynamoDB InternalFailure (500) on the app inventory's UpdateItem (x2)": SURVIVED,
    "ResourceInUseException storm (6 in a row on CreateFargateProfile)": SURVIVED,
    "IAM propagation: 'Misconfigured PodExecutionRole Trust Policy' on the first profile creation (x2)": SURVIVED,
    "registry 429 Too Many Requests (x2)": SURVIVED,
    "registry 503 Service Unavailable (x3)": SURVIVED,
    "registry 500 Internal Server Error (x2)": SURVIVED,
    "registry 401 once (token refreshed)": SURVIVED,
    "registry hang (no answer for 1 s, connection dropped)": SURVIVED,
    "registry 401 on every pull": COMPENSATED,
    "registry 404 (image gone upstream)": COMPENSATED,
    "Kubernetes 429 on apply (x2)": SURVIVED,
    "Kubernetes 503 on apply (x2)": SURVIVED,
    "Kubernetes 409 Conflict on apply": COMPENSATED,
    "Kubernetes 422 Invalid on apply": COMPENSATED,
    "AccessDenied on CreatePullThroughCacheRule": COMPENSATED,
    "Lambda task timeout (WarmImageCache past its 6 s timeout)": SURVIVED,
    "execution stopped mid-way (StopExecution in CheckFargateProfile)": CLEANED,
    "execution stopped mid-way (StopExecution in WarmImageCache)": CLEANED,
}
# Every update case of test_reliability_updates.py and its expected end: the update's objects, the first revision's
# applied again by the rollback, or the first revision never touched (the update failed before ApplyApp).
UPDATED, ROLLED_BACK, UNTOUCHED = "updated", "rolled back", "untouched"
EXPECTED_UPDATES = {
    "another manager owns replicas (kubectl scale)": UPDATED,
    "port changed": UPDATED,
    "ingress dropped": UPDATED,
    "Kubernetes 409 Conflict on apply": ROLLED_BACK,
    "Kubernetes 422 Invalid on apply": ROLLED_BACK,
    "Kubernetes 503 on apply past its retries": ROLLED_BACK,
    "image missing upstream": UNTOUCHED,
    "rollout failure (image not pullable on Fargate)": ROLLED_BACK,
    "a failing first provision in the same namespace at the same moment": UPDATED,
}
BAD_INPUT_PATHS = ("API POST /apps", "console start", "account check")
# The goal of each figure of the concurrency table (section 4); the summary judges them.
CONCURRENCY_GOALS = {
    "apps": "20",
    "namespaces": "4",
    "failing_on_purpose": "5",
    "succeeded": "= 15",
    "failed_as_planned": "= 5",
    "holder_sets_exact": "True",
    "holds_left_after_teardown": "= 0",
    "teardown_leftovers": "= 0",
    "profiles_created": "<= 4",
    "profiles_serving": "<= 4",
    "resource_in_use_surfaced": "= 0",
    "busy_retries": f"<= {GOALS['busy_retries']}",
    "provision_seconds": f"<= {GOALS['provision_seconds']}",
    "teardowns_succeeded": "= 15",
    "left_after_teardown": "= 0",
    "teardown_seconds": f"<= {GOALS['teardown_seconds']}",
}
MUTATION_GOAL = 90  # % of mutants killed, equivalent mutants left out
MUTATION_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "mutation.json"  # written by `make mutation`
MUTATED_PACKAGE = Path(__file__).resolve().parents[1] / "layers" / "core" / "fargate_app"


def _good(crowd: dict[str, Any]) -> int | None:
    """How many of the concurrency figure's apps were meant to succeed."""
    apps, failing = crowd.get("apps"), crowd.get("failing_on_purpose")
    return apps - failing if isinstance(apps, int) and isinstance(failing, int) else None


def _at_most(value: Any, goal: float) -> bool:
    return isinstance(value, int | float) and value <= goal


def mutation_check(mutation: dict[str, Any]) -> tuple[str, str, str, bool]:
    return (
        "Mutation score of fargate_app (`make mutation`, unit and integration tests)",
        f">= {MUTATION_GOAL} % killed outside equivalent mutants",
        mutation["measured"],
        mutation["met"],
    )


def alone_check(alone: dict[str, bool]) -> tuple[str, str, str, bool]:
    return (
        "Test files of tests/e2e and tests/reliability that pass alone (`make mutation`)",
        "100 %",
        f"{sum(1 for ok in alone.values() if ok)}/{len(alone)}"
        + "".join(f"; fails alone: {path}" for path, ok in sorted(alone.items()) if not ok)
        if alone
        else "not measured",
        bool(alone) and all(alone.values()),
    )


def update_as_expected(row: dict[str, Any]) -> bool:
    """An update row whose end is its kind's: the expected revision Running, the neighbour untouched, nothing
    deleted, and the status (and rollback) the kind implies."""
    expected = EXPECTED_UPDATES.get(row["kind"])
    status = {UPDATED: "SUCCEEDED"}.get(expected or "", "FAILED")
    rolled_back = bool(row["rolled_back_to"]) == (expected == ROLLED_BACK)
    return bool(
        expected
        and row["status"] == status
        and rolled_back
        and row["running_expected_revision"]
        and row["neighbour_untouched"]
        and not row["deleted"]
    )


def summary_line(check: tuple[str, str, str, bool]) -> str:
    name, goal, measured, met = check
    return table(["item", "goal", "measured", "met"], [(name, goal, measured, "yes" if met else "**no**")])[-1]


def patch_mutation(document: str, results: dict[str, Any] | None, alone: dict[str, bool]) -> str:
    """docs/reliability.md with `make mutation`'s figures replaced (its two summary rows and section 8): the rest of
    the report is `make reliability`'s and stays as that run wrote it."""
    mutation = mutation_figures(results)
    lines = document.split("\n")
    for check in (mutation_check(mutation), alone_check(alone)):
        lines = [summary_line(check) if line.startswith(f"| {check[0]} |") else line for line in lines]
    text = "\n".join(lines)
    head = text.split("\n## 8. Mutation testing", 1)[0].rstrip("\n") + "\n"
    return head + ("\n" + "\n".join(mutation["section"]) if mutation["section"] else "")


def mutation_figures(results: dict[str, Any] | None, package: Path = MUTATED_PACKAGE) -> dict[str, Any]:
    """The mutation score line of the summary and section 8 (the score per module and every triaged mutant), from
    docs/mutation.json (tools/mutation_report.py). Mutants in code that no unit or integration test runs count as not
    killed: they are the weakest spots, not exempt ones. A module whose source changed since its verdicts (stale) is
    left out of the score: the goal needs every module measured as it is now."""
    if not results:
        return {"measured": "not measured", "met": False, "section": []}
    stale = set(stale_modules(results, package))
    recorded = results.get("modules", {})
    current = {module: counts for module, counts in recorded.items() if module not in stale}
    survivors = [m for m in results["survivors"] if module_of(m["name"]) not in stale]
    equivalent = {m["name"] for m in survivors if m.get("equivalent")}
    every_equivalent = {m["name"] for m in results["survivors"] if m.get("equivalent")}  # stale modules' rows too
    open_survivors = [m for m in survivors if m["name"] not in equivalent]
    killed = sum(counts.get(status, 0) for counts in current.values() for status in KILLED_STATUSES)
    untested = sum(counts.get("no tests", 0) for counts in current.values())
    judged = killed + len(open_survivors) + untested
    score = 100 * killed / judged if judged else 0.0
    unjudged = sum(counts.get("not checked", 0) for counts in current.values())
    stale_mutants = sum(sum(counts.values()) for module, counts in recorded.items() if module in stale)
    never = sorted(module for module in stale if module not in recorded)
    measured = (
        f"{score:.1f} % ({killed} killed of {judged}: {len(open_survivors)} surviving, {untested} in code no unit or "
        f"integration test runs; {len(equivalent)} equivalent left out)"
        + (f"; {unjudged} mutants not judged (run stopped)" if unjudged else "")
        + (
            f"; {len(stale)} modules changed since they were measured ({stale_mutants} mutants of their earlier "
            f"source left out)"
            if stale
            else ""
        )
    )
    measured_at = results.get("measured_at", {})
    section = [
        "## 8. Mutation testing",
        "",
        f"`make mutation` (mutmut {results['mutmut']}) mutates `layers/core/fargate_app` and runs, for each mutant, the",
        "unit and integration tests that call the mutated function. The score counts a mutant in code that none of",
        "those tests runs as not killed. Verdicts are kept per module with the commit they were measured at; a module",
        "changed since (*stale*) is left out of the score until `make mutation` (`tools/mutation_run.py --stale`)",
        "measures it again. Every mutant left alive, with where it is and what it changes, is in docs/mutation.json",
        "(`survivors`, `untested_mutants`); `mutmut show <name>` in `.mutation/` prints one. A survivor is judged",
        "again with the tests written since (`tools/mutation_run.py --survivors`: same source, same mutants); "
        f"{len(results.get('rejudged', {}))} were",
        "killed that way (`rejudged`, with the commit of those tests) and count as killed in their module.",
        "",
        *table(
            MODULE_COLUMNS,
            [
                (
                    module,
                    f"{measured_at.get(module, '?')}{' (stale)' if module in stale else ''}",
                    *module_row(module, counts, results["survivors"], every_equivalent)[1:],
                )
                for module, counts in recorded.items()
            ]
            + [(module, "never (stale)", "-", "-", "-", "-", "-", "-", "-") for module in never],
        ),
        "",
        "Equivalent by rule (tools/mutation_triage.json `rules`, matched on the mutated line):",
        "",
        *[f"- {count} mutants: {reason}" for reason, count in sorted(rule_counts(survivors).items())],
        "",
        "Triaged one by one: why an equivalent mutant cannot change behaviour, and the test that now kills one that",
        "once survived.",
        "",
        *table(
            ["mutant", "where", "change", "triage"],
            [
                (m["name"], m["where"], m["change"], f"equivalent: {m['equivalent']}")
                for m in survivors
                if m.get("equivalent") and not m.get("by_rule")
            ]
            + [
                (m["name"], m["where"], m["change"], f"killed by {m['killed_by']}")
                for m in results.get("killed_by_new_tests", [])
            ]
            + [(m["name"], m["where"], m["change"], "not triaged yet") for m in open_survivors],
        ),
        "",
    ]
    met = score >= MUTATION_GOAL and not unjudged and not stale
    return {"measured": measured, "met": met, "section": section}


KILLED_STATUSES = ("killed", "timeout", "caught by type check")
MODULE_COLUMNS = ["module", "measured at", "mutants", "killed", "surviving", "no test runs it", "equivalent"]
MODULE_COLUMNS += ["not judged", "score"]


def module_of(mutant: str) -> str:
    """``fargate_app.kube.usage`` of ``fargate_app.kube.usage.x_profile_users__mutmut_55``."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def module_name(path: Path, package: Path) -> str:
    """``fargate_app.kube.usage`` of ``<package>/kube/usage.py`` (``fargate_app.kube`` of its ``__init__.py``)."""
    return ".".join(("fargate_app", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stale_modules(measured: dict[str, Any] | None, package: Path = MUTATED_PACKAGE) -> list[str]:
    """Modules of ``package`` with no recorded verdicts, or recorded for a source that has changed since."""
    sources = (measured or {}).get("sources", {})
    return [
        module_name(path, package)
        for path in sorted(package.rglob("*.py"))
        if sources.get(module_name(path, package)) != source_digest(path)
    ]


def rule_counts(survivors: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for mutant in survivors:
        if mutant.get("by_rule"):
            counts[mutant["equivalent"]] = counts.get(mutant["equivalent"], 0) + 1
    return counts


def module_row(
    module: str, counts: dict[str, int], survivors: list[dict[str, Any]], equivalent: set[str]
) -> tuple[str, int, int, int, int, int, int, str]:
    killed = sum(counts.get(status, 0) for status in KILLED_STATUSES)
    left_out = sum(1 for m in survivors if m["name"] in equivalent and m["name"].startswith(f"{module}."))
    surviving = counts.get("survived", 0) + counts.get("suspicious", 0) - left_out
    untested = counts.get("no tests", 0)
    judged = killed + surviving + untested
    score = f"{100 * killed / judged:.0f} %" if judged else "-"
    return (module, sum(counts.values()), killed, surviving, untested, left_out, counts.get("not checked", 0), score)


def load(results: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {"rows": {}, "outcomes": {}, "scan": {}}
    files = sorted(results.glob("*.json"))
    if not files:
        raise SystemExit(f"no results in {results}: run the suite with RELIABILITY_RESULTS_DIR={results}")
    for path in files:
        document = json.loads(path.read_text())
        for section, rows in document["rows"].items():
            merged["rows"].setdefault(section, []).extend(rows)
        merged["outcomes"].update(document["outcomes"])
        for key, value in document["secretScan"].items():
            merged["scan"][key] = merged["scan"].get(key, [] if isinstance(value, list) else 0) + value
    # Every sandbox's authorization decisions (IAM_RESULTS_DIR=<results>/iam): the "0 refused" figures.
    merged["aws"], merged["kubernetes"] = authorization_records.read(results / "iam")
    # `make mutation`'s figures (committed; they outlive the run): the mutation score and which test files pass alone
    if MUTATION_RESULTS.exists():
        mutation = json.loads(MUTATION_RESULTS.read_text())
        merged["mutation"], merged["alone"] = mutation.get("mutation"), mutation.get("alone")
    return merged


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def render(data: dict[str, Any]) -> tuple[str, list[str]]:
    rows, scan, outcomes = data["rows"], data["scan"], data["outcomes"]
    bad = rows.get("bad_input", [])
    cases = sorted({r["case"] for r in bad})
    api = {r["case"] for r in bad if r["path"].startswith("API")}
    console = {r["case"] for r in bad if r["path"] == "console start"}
    account = {r["case"] for r in bad if r["path"] == "account check"}
    accepted = sorted({f"{r['case']} ({r['path']})" for r in bad if not r.get("refused")})
    effects = rows.get("bad_input_effects", [])
    bad_effects = [e for e in effects if e["created"] or e["started"]]
    effects_text = "; ".join(f"{e['path']}: {e['created']}, {e['started']} started" for e in bad_effects) or "nothing"
    repeats = rows.get("determinism", [])
    faults = rows.get("faults", [])
    survived = [f for f in faults if f["outcome"].startswith("survived")]
    compensated = [f for f in faults if f["outcome"] == COMPENSATED]
    cleaned = [f for f in faults if f["outcome"] == CLEANED]
    fault_kinds = [f["kind"] for f in faults]
    unexpected = [f["kind"] for f in faults if EXPECTED_FAULTS.get(f["kind"]) != f["outcome"] or not f["faults"]]
    missing_kinds = sorted(set(EXPECTED_FAULTS) - set(fault_kinds))
    updates = rows.get("updates", [])
    updates_as_expected = [u for u in updates if update_as_expected(u)]
    missing_updates = sorted(set(EXPECTED_UPDATES) - {u["kind"] for u in updates})
    replays = rows.get("replays", [{}])[0] if rows.get("replays") else {}
    crowd = rows.get("concurrency", [{}])[0] if rows.get("concurrency") else {}
    security = rows.get("security", [])
    checkov = rows.get("checkov", [{}])[0] if rows.get("checkov") else {}
    planted = next((r for r in security if r["check"] == "credential scan on a planted token"), None)
    failed_tests = sorted(nodeid for nodeid, outcome in outcomes.items() if outcome != "passed")
    polls = rows.get("polls", [])
    rollouts = [r for r in polls if r["poll"] == "CheckRollout"]
    turned = [r for r in rollouts if r["checks"] >= 2]
    runtime_errors = rows.get("runtime_errors", [])
    as_aws = [
        r
        for r in runtime_errors
        if r["status"] == "FAILED" and r["error"] == "States.Runtime" and not r["caught"] and not r["retried"]
    ]
    dataflow = rows.get("dataflow", [])
    never_evict = rows.get("never_evict", [])
    tenancy = rows.get("cross_tenant", [])
    tenancy_effects = rows.get("cross_tenant_effects", [])
    # The kinds of cross-tenant attempt; each must be among the rows, every row refused, nothing created.
    tenancy_kinds = (
        "other namespace",
        "other cluster",
        "POST without the admin grant",
        "protected namespace",
        "body names",
    )
    kinds_seen = [kind for kind in tenancy_kinds if any(r["case"].startswith(kind) for r in tenancy)]
    audit = figure_audit.audit()
    recorded_first = [r for r in audit if r.recorded_first]
    mutation = mutation_figures(data.get("mutation"))
    alone = data.get("alone") or {}

    checks = [
        (
            "Bad input: distinct invalid requests",
            f">= {GOALS['bad_input']}, all refused on every path, nothing created or started",
            f"{len(cases)} ({len(api)} through the API, {len(console)} as console starts, {len(account)} refused by "
            f"the account checks of ValidateRequest); not refused: {', '.join(accepted) or 'none'}; created or "
            f"started: {effects_text}",
            len(cases) >= GOALS["bad_input"]
            and not accepted
            and {e["path"] for e in effects} == set(BAD_INPUT_PATHS)
            and not bad_effects,
        ),
        (
            "Same request, same outcome",
            "100 % over 10 runs each, the expected outcome",
            ", ".join(f"{r['request']}: {r['same']}/{r['runs']} {r['outcome']}" for r in repeats) or "not measured",
            len(repeats) == 2 and all(r["same"] == r["runs"] >= 10 and r["outcome"] == r["expected"] for r in repeats),
        ),
        (
            "Faults: the injected kinds, each with its expected outcome",
            f"all {len(EXPECTED_FAULTS)} kinds, each as expected",
            f"{len(faults)} rows ({len(survived)} survived, {len(compensated)} compensated, {len(cleaned)} cleaned by "
            f"teardown); missing: {', '.join(missing_kinds) or 'none'}; not as expected: {', '.join(unexpected) or 'none'}",
            sorted(fault_kinds) == sorted(EXPECTED_FAULTS) and not unexpected,
        ),
        (
            "Updates of a running app meeting a fault",
            f"all {len(EXPECTED_UPDATES)} kinds; 100 % end with the expected revision Running, the neighbour app "
            "untouched, nothing deleted",
            f"{len(updates_as_expected)}/{len(updates)} as expected; missing: {', '.join(missing_updates) or 'none'}",
            bool(updates) and len(updates_as_expected) == len(updates) and not missing_updates,
        ),
        (
            "Replays: executions for 5 identical requests (and a late one)",
            "1 execution started, 1 profile, 1 deployment; another request 409; the late one 200 replayed",
            f"{replays.get('executions')} execution, {replays.get('profiles')} profile, {replays.get('deployments')} "
            f"deployment; {replays.get('conflict')}; late: {replays.get('late')}",
            (replays.get("executions"), replays.get("profiles"), replays.get("deployments")) == (1, 1, 1)
            and replays.get("conflict") == "409 ExecutionConflict"
            and replays.get("late") == "200 replayed=True",
        ),
        (
            "Concurrency: 20 apps in 4 namespaces at once, 5 of them failing on purpose (missing image tag)",
            "15/15 good ones succeed, 5/5 fail ImageNotFound, <= 4 profiles, 0 ResourceInUseException surfaced",
            f"{crowd.get('succeeded')}/{_good(crowd)} succeeded, {crowd.get('failed_as_planned')}/"
            f"{crowd.get('failing_on_purpose')} failed as planned, {crowd.get('profiles_serving')} profiles serving "
            f"them ({crowd.get('profiles_created')} created by them), {crowd.get('resource_in_use_surfaced')} surfaced",
            crowd.get("succeeded") == _good(crowd) == 15
            and crowd.get("failed_as_planned") == crowd.get("failing_on_purpose") == 5
            and crowd.get("profiles_serving", 99) <= 4
            and crowd.get("resource_in_use_surfaced") == 0,
        ),
        (
            "Concurrency: holder sets of the shared role, profiles and rule (DynamoDB) after those 20 provisions",
            "exact: each good app holds its role, profile and rule; no failed app holds anything",
            "exact" if crowd.get("holder_sets_exact") else "not exact",
            crowd.get("holder_sets_exact") is True,
        ),
        (
            "Concurrency: busy-cluster retries inside the workflow (ProfileOperationInProgress)",
            f"<= {GOALS['busy_retries']}",
            str(crowd.get("busy_retries")),
            _at_most(crowd.get("busy_retries"), GOALS["busy_retries"]),
        ),
        (
            "Concurrency: 20 provisions at once, first request to last end",
            f"<= {GOALS['provision_seconds']} s",
            f"{crowd.get('provision_seconds')} s",
            _at_most(crowd.get("provision_seconds"), GOALS["provision_seconds"]),
        ),
        (
            "Concurrency: the 15 teardowns at once",
            f"15/15, nothing left (objects, holds, leftovers), <= {GOALS['teardown_seconds']} s",
            f"{crowd.get('teardowns_succeeded')}/{_good(crowd)} succeeded, {crowd.get('left_after_teardown')} objects "
            f"left, {crowd.get('holds_left_after_teardown')} holds left, {crowd.get('teardown_leftovers')} leftovers, "
            f"{crowd.get('teardown_seconds')} s",
            crowd.get("teardowns_succeeded") == _good(crowd) == 15
            and crowd.get("left_after_teardown") == 0
            and crowd.get("holds_left_after_teardown") == 0
            and crowd.get("teardown_leftovers") == 0
            and _at_most(crowd.get("teardown_seconds"), GOALS["teardown_seconds"]),
        ),
        (
            "Step Functions: provisions whose rollout poll checked >= 2 times (e2e, reliability)",
            "100 %",
            f"{len(turned)}/{len(rollouts)}" + (f" ({100 * len(turned) // len(rollouts)} %)" if rollouts else ""),
            bool(rollouts) and len(turned) == len(rollouts),
        ),
        (
            "Step Functions: unresolved paths failing as AWS does (States.Runtime, no Retry/Catch)",
            "all 9 kinds",
            f"{len(as_aws)}/{len(runtime_errors)}: {', '.join(sorted(r['case'] for r in as_aws))}",
            len(runtime_errors) == 9 and len(as_aws) == 9,
        ),
        (
            "Step Functions: paths read but not guaranteed on every route (data-flow check)",
            "0 in 3 machines",
            f"{sum(r['problems'] for r in dataflow)} in {len(dataflow)} machines",
            len(dataflow) == 3 and sum(r["problems"] for r in dataflow) == 0,
        ),
        (
            "Tenancy: cross-tenant attempts refused (other namespace, other cluster, POST without the admin grant, "
            "protected namespace, body/path mismatch)",
            "100 %, nothing created",
            f"{sum(1 for r in tenancy if r['refused'])}/{len(tenancy)} refused, {len(kinds_seen)}/{len(tenancy_kinds)} "
            "kinds; created: "
            + (", ".join(tenancy_effects[0]["created"]) or "nothing" if tenancy_effects else "not measured")
            + ("; executions started" if tenancy_effects and tenancy_effects[0]["started"] else ""),
            bool(tenancy)
            and all(r["refused"] for r in tenancy)
            and len(kinds_seen) == len(tenancy_kinds)
            and bool(tenancy_effects)
            and not tenancy_effects[0]["created"]
            and not tenancy_effects[0]["started"],
        ),
        (
            "Profiles: someone else's pods evicted by our teardown and compensation",
            "0, profile kept (both paths)",
            ", ".join(f"{r['case']}: {r['evicted']} evicted, profile kept: {r['profile_kept']}" for r in never_evict)
            or "not measured",
            {r["case"] for r in never_evict} == {"teardown", "compensation"}
            and all(r["evicted"] == 0 and r["profile_kept"] is True for r in never_evict),
        ),
        *[
            (f"Security: {r['check']}", "holds", r["result"], r.get("ok") is True)
            for r in security
            if r["check"] != "credential scan on a planted token"
        ],
        (
            "Security: checkov on template.yaml",
            f"0 failed, 0 parsing errors, <= {GOALS['checkov_skips']} skipped, each with its reason",
            f"checkov {checkov.get('version')}: {checkov.get('passed')} passed, {checkov.get('failed')} failed, "
            f"{checkov.get('parsing_errors')} parsing errors, {checkov.get('skipped')} skipped "
            f"({checkov.get('skips_without_reason')} without a reason)",
            checkov.get("failed") == 0
            and checkov.get("parsing_errors") == 0
            and (checkov.get("passed") or 0) > 0
            and _at_most(checkov.get("skipped"), GOALS["checkov_skips"])
            and checkov.get("skips_without_reason") == 0,
        ),
        (
            "Security: credentials in captured output",
            f"0, in every phase, >= {GOALS['bytes_scanned']} bytes read",
            f"{len(scan.get('findings', []))} in {scan.get('phasesScanned', 0)} test phases ({scan.get('bytesScanned', 0)} bytes)",
            not scan.get("findings")
            and scan.get("phasesScanned", 0) > 0
            and scan.get("bytesScanned", 0) >= GOALS["bytes_scanned"],
        ),
        (
            "Security: the scan fails a test whose output holds a planted EKS token",
            "the test fails, the value withheld",
            planted["result"] if planted else "not measured",
            bool(planted and planted.get("ok") is True),
        ),
        _refused("Authorization: AWS calls refused in the e2e, reliability and CLI suites", data["aws"]),
        _refused("Authorization: Kubernetes requests refused (403) in those suites", data["kubernetes"]),
        (
            "Figures recorded before their test asserts (tools/figure_audit.py)",
            "100 %",
            f"{len(recorded_first)}/{len(audit)}" + "".join(f"; late: {r.test}" for r in audit if not r.recorded_first),
            bool(audit) and len(recorded_first) == len(audit),
        ),
        mutation_check(mutation),
        alone_check(alone),
        (
            "Tests of the run (every test it collected)",
            "all pass",
            f"{len(outcomes) - len(failed_tests)}/{len(outcomes)} passed",
            not failed_tests,
        ),
    ]
    checks.append(
        (
            "Report rows without a goal",
            "0",
            str(sum(1 for _, goal, _, _ in checks if not goal.strip())),
            all(goal.strip() for _, goal, _, _ in checks),
        )
    )
    missed = [name for name, _, _, met in checks if not met]
    out = [
        "# Reliability and security, in figures",
        "",
        "Generated by `make reliability` (tools/reliability_report.py) from the suite in `tests/reliability/`: the real",
        "state machines and handlers in the local sandbox (moto's Step Functions interpreter, CNCF distribution",
        "registries, the Kubernetes API emulator), waits scaled to 1/100. Do not edit by hand.",
        "",
        "Every figure is what a test observed, recorded before the test judges it (a failing run reports its bad value",
        "rather than nothing), and every summary row has its goal: a figure that is missing or off its goal is a",
        "missed goal, and `make reliability` fails. Section 8 and its two summary rows come from `make mutation`",
        "(docs/mutation.json).",
        "",
        "## Summary",
        "",
        *table(["item", "goal", "measured", "met"], [(n, g, m, "yes" if ok else "**no**") for n, g, m, ok in checks]),
    ]
    if failed_tests:
        out += ["", "Tests that did not pass: " + ", ".join(f"`{t}`" for t in failed_tests)]
    out += [
        "",
        "## 1. Bad input",
        "",
        "Every request below was POSTed to `/apps` (API Gateway REST proxy event → the API function: 400 with `fields`)",
        "and given as the input of a console start of the provision state machine (FAILED, `InvalidRequest`, step",
        "`ValidateRequest`, the same rule, and no Compensate: nothing exists yet). What only the account can tell (the",
        "cluster, the subnets, the secret) is refused by ValidateRequest's account checks, before the first write.",
        "IAM roles, Fargate profiles, pull-through-cache rules, ECR repositories, Kubernetes objects and provision",
        "executions were counted before and after: unchanged.",
        "",
        *table(
            ["case", "field", "rule (API answer)", "paths"],
            [
                (
                    c,
                    next(r["field"] for r in bad if r["case"] == c),
                    next((r["rule"] for r in bad if r["case"] == c and r["path"].startswith("API")), ""),
                    " + ".join(sorted({r["path"].split(" ")[0] for r in bad if r["case"] == c})),
                )
                for c in cases
            ],
        ),
        "",
        "## 2. Faults",
        "",
        "Injected through the sandbox's hooks, one kind per provision. *Survived*: the execution SUCCEEDED and the",
        "app's pods run on `fargate-` nodes; *compensated*: FAILED naming the step, and nothing the execution created",
        "remains (inventory before/after). The last column lists the errors the steps raised (empty: the SDK's or the",
        "registry client's own retries absorbed the fault before the state machine saw it).",
        "",
        *table(
            [
                "fault",
                "expected",
                "outcome",
                "step / error",
                "injected",
                "step errors (retried, or caught and compensated)",
            ],
            [
                (
                    f["kind"],
                    EXPECTED_FAULTS.get(f["kind"], "(not an expected kind)"),
                    f["outcome"],
                    " / ".join(filter(None, (f.get("step"), f.get("error")))),
                    f["faults"],
                    f.get("retried") or "",
                )
                for f in faults
            ],
        ),
        "",
        "A stopped execution (StopExecution) runs no Catch and so no compensation. The decided behaviour: the app's",
        "teardown (`DELETE /apps/…`) cleans up after it — Kubernetes objects, and the Fargate profile found by its",
        "`fargate-app/created-for` tag. The per-cluster pod execution role and the per-upstream cache rule stay:",
        "they are shared and reused by the next provision. The namespace stays too (never deleted: it may be shared).",
        "",
        *[
            f"- {f['kind']}: left by the stop: {f.get('left_by_stop')}; after the teardown: {f.get('left_after_teardown')}"
            for f in cleaned
        ],
        "",
        "### Updates of a running app",
        "",
        "Each case provisions revision 1 of an app (port and ALB Ingress) beside a neighbour app in the same namespace,",
        "arms its fault, then posts an update. *Updated*: the update SUCCEEDED and its objects run; *rolled back*: it",
        "FAILED and Compensate applied revision 1 again (`rolledBackTo`); *untouched*: it failed before ApplyApp, so",
        "revision 1 was never changed. In every case the expected revision's pods run on `fargate-` nodes, the",
        "neighbour's Deployment keeps its resourceVersion, and the failure report lists nothing deleted.",
        "",
        *table(
            [
                "update case",
                "expected",
                "status / error",
                "rolled back to",
                "expected revision Running",
                "neighbour untouched",
                "deleted",
            ],
            [
                (
                    u["kind"],
                    EXPECTED_UPDATES.get(u["kind"], "(not an expected kind)"),
                    " / ".join(filter(None, (u["status"], u["error"]))),
                    u["rolled_back_to"] or "",
                    "yes" if u["running_expected_revision"] else "NO",
                    "yes" if u["neighbour_untouched"] else "NO",
                    ", ".join(u["deleted"]) or "nothing",
                )
                for u in updates
            ],
        ),
        "",
        "## 3. Replays",
        "",
        f"{replays.get('sent')} POSTs of one request (5 at once, one after it succeeded) → {replays.get('executions')} execution,",
        f"{replays.get('profiles')} Fargate profile, {replays.get('deployments')} Deployment. A different request for the",
        f"running app → {replays.get('conflict')}.",
        "",
        "## 4. Concurrency",
        "",
        *table(
            ["figure", "value", "goal"],
            [(k.replace("_", " "), v, CONCURRENCY_GOALS.get(k, "")) for k, v in crowd.items()],
        ),
        "",
        "## 5. Step Functions semantics",
        "",
        "The sandbox fails executions where AWS does (`fargate_sandbox/sfn_semantics.py`): a path that does not",
        "resolve is `States.Runtime`, which neither Retry nor Catch handles. The Kubernetes emulator takes Fargate's",
        "time to start (micro-VM, then image pull) and stop (grace period) a pod, scaled like every wait, so every",
        "poll turns more than once. Checks per poll, over every execution of the e2e and reliability suites:",
        "",
        *table(
            ["suite", "poll", "executions", "checked once", "checks (min / max)"],
            [
                (
                    suite,
                    poll,
                    len(group),
                    ", ".join(sorted(r.get("name", "?") for r in group if r["checks"] < 2)) or "0",
                    f"{min(r['checks'] for r in group)} / {max(r['checks'] for r in group)}",
                )
                for suite, poll in sorted({(r["suite"], r["poll"]) for r in polls})
                for group in [[r for r in polls if (r["suite"], r["poll"]) == (suite, poll)]]
            ],
        ),
        "",
        *table(
            ["unresolved path in", "status", "error", "caught", "retried"],
            [(r["case"], r["status"], r["error"], r["caught"], r["retried"]) for r in runtime_errors],
        ),
        "",
        "Data-flow check of the ASL (tests/unit/asl_dataflow.py): every path a state reads, on every route into it,",
        "from the handlers' result models: "
        + ", ".join(f"{r['machine']} {r['problems']} problem(s)" for r in dataflow)
        + ".",
        "",
        "## 6. Tenancy",
        "",
        "A role with the team policy of docs/api-access.md (applied verbatim) and the sandbox's administrator call the",
        "API through API Gateway's AWS_IAM authorization (`fargate_sandbox/api_authorization.py`). Resources and",
        "provision executions were counted before and after.",
        "",
        *table(
            ["attempt", "caller", "request", "status", "refused", "answer"],
            [(r["case"], r["caller"], r["request"], r["status"], r["refused"], r["answer"]) for r in tenancy],
        ),
        "",
        "## 7. Security",
        "",
        *table(["check", "result"], [(r["check"], r["result"]) for r in security]),
        "",
        "checkov skips (each is a `Metadata: checkov: skip` entry with its reason in template.yaml):",
        "",
        *table(
            ["check", "resources", "reason"],
            [(r["check"], r["resources"], r["reason"]) for r in rows.get("checkov_skips", [])],
        ),
        "",
        "Credential scan: every test phase's captured stdout, stderr and log records (production logs at DEBUG in",
        "this suite) and failure reports, in every process of the run, searched for the ECR tokens the sandbox issued",
        f"({scan.get('ecrTokensIssued', 0)}), the EKS bearer tokens the cluster received ({scan.get('eksTokensPresented', 0)}),",
        "anything shaped like either, the seeded secret values and the AWS secret keys: "
        f"{len(scan.get('findings', []))} found in {scan.get('phasesScanned', 0)} phases.",
        "",
    ]
    out += mutation["section"]
    return "\n".join(out), missed


def _refused(name: str, decisions: list[dict[str, Any]]) -> tuple[str, str, str, bool]:
    """Decisions of the suites a user's runs resemble (not tests/sandbox, whose tests refuse calls on purpose)."""
    suites = [d for d in decisions if d.get("origin", "").startswith(("tests/e2e/", "tests/reliability/"))]
    refused = sum(d["count"] for d in suites if not d["allowed"])
    total = sum(d["count"] for d in suites)
    return (name, "0", f"{refused} of {total}" if total else "not recorded", total > 0 and refused == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/reliability.md"))
    args = parser.parse_args(argv)
    text, missed = render(load(args.results))
    args.out.write_text(text)
    print(f"wrote {args.out}" + (f"; goals missed: {', '.join(missed)}" if missed else "; every goal met"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
