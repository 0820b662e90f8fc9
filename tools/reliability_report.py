"""Write docs/reliability.md from the reliability suite's results (issue 8).

    RELIABILITY_RESULTS_DIR=/tmp/r pytest tests/reliability tests/e2e tests/sandbox -n 2 --dist loadgroup
    python tools/reliability_report.py --results /tmp/r --out docs/reliability.md

Each pytest process wrote ``<worker>.json`` (tests/reliability/conftest.py): the rows the tests recorded, the outcome
of every reliability test and the credential scan's statistics. This merges them, checks each figure against the
issue's goal, writes the Markdown report and exits 1 when a goal is missed or a reliability test did not pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fargate_sandbox import authorization_records

GOALS = {
    "bad_input": 100,  # distinct invalid requests (issue 14)
    "faults": 15,  # distinct fault kinds
}


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
    # Every sandbox's authorization decisions (IAM_RESULTS_DIR=<results>/iam): issue 13's "0 refused" figures.
    merged["aws"], merged["kubernetes"] = authorization_records.read(results / "iam")
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
    missed: list[str] = []
    bad = rows.get("bad_input", [])
    cases = sorted({r["case"] for r in bad})
    api = {r["case"] for r in bad if r["path"].startswith("API")}
    console = {r["case"] for r in bad if r["path"] == "console start"}
    account = {r["case"] for r in bad if r["path"] == "account check"}
    repeats = rows.get("determinism", [])
    faults = rows.get("faults", [])
    survived = [f for f in faults if f["outcome"].startswith("survived")]
    compensated = [f for f in faults if f["outcome"] == "compensated"]
    cleaned = [f for f in faults if f not in survived and f not in compensated]
    replays = rows.get("replays", [{}])[0] if rows.get("replays") else {}
    crowd = rows.get("concurrency", [{}])[0] if rows.get("concurrency") else {}
    security = rows.get("security", [])
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
    # The kinds of attempt issue 20 names; each must be among the rows, every row refused, nothing created.
    tenancy_kinds = (
        "other namespace",
        "other cluster",
        "POST without the admin grant",
        "protected namespace",
        "body names",
    )
    kinds_seen = [kind for kind in tenancy_kinds if any(r["case"].startswith(kind) for r in tenancy)]

    checks = [
        (
            "Bad input: distinct invalid requests",
            f">= {GOALS['bad_input']}, all refused, nothing created",
            f"{len(cases)} ({len(api)} through the API, {len(console)} as console starts, {len(account)} refused by "
            "the account checks of ValidateRequest)",
            len(cases) >= GOALS["bad_input"],
        ),
        (
            "Same request, same outcome",
            "100 % over 10 runs each",
            ", ".join(f"{r['request']}: {r['same']}/{r['runs']} {r['outcome']}" for r in repeats) or "not measured",
            bool(repeats) and all(r["same"] == r["runs"] >= 10 for r in repeats),
        ),
        (
            "Faults: distinct kinds",
            f">= {GOALS['faults']}, each survived or compensated",
            f"{len(faults)} ({len(survived)} survived, {len(compensated)} compensated, {len(cleaned)} cleaned by teardown)",
            len(faults) >= GOALS["faults"],
        ),
        (
            "Replays: executions for 5 identical requests",
            "1, no duplicate resources; another request 409",
            f"{replays.get('executions')} execution, {replays.get('profiles')} profile, {replays.get('deployments')} deployment; {replays.get('conflict')}",
            replays.get("executions") == 1,
        ),
        (
            "Concurrency: 20 apps in 4 namespaces",
            "20/20, <= 4 profiles, 0 ResourceInUseException surfaced",
            f"{crowd.get('succeeded')}/{crowd.get('apps')}, {crowd.get('profiles_serving')} profiles serving them ({crowd.get('profiles_created')} created by them), {crowd.get('resource_in_use_surfaced')} surfaced ({crowd.get('busy_retries')} retried inside the workflow)",
            crowd.get("succeeded") == 20
            and crowd.get("profiles_serving", 99) <= 4
            and crowd.get("resource_in_use_surfaced") == 0,
        ),
        (
            "Concurrency: 20 teardowns at once",
            "nothing left",
            f"{crowd.get('teardowns_succeeded')}/20 succeeded, {crowd.get('left_after_teardown')} objects left",
            crowd.get("teardowns_succeeded") == 20 and crowd.get("left_after_teardown") == 0,
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
            and all(r["evicted"] == 0 and r["profile_kept"] for r in never_evict),
        ),
        (
            "Security: checkov failed checks",
            "0",
            next((r["result"] for r in security if r["check"].startswith("checkov")), "not run"),
            any(r["check"].startswith("checkov") and " 0 failed" in r["result"] for r in security),
        ),
        (
            "Security: credentials in captured output",
            "0",
            f"{len(scan.get('findings', []))} in {scan.get('phasesScanned', 0)} test phases ({scan.get('bytesScanned', 0)} bytes)",
            not scan.get("findings") and scan.get("phasesScanned", 0) > 0,
        ),
        _refused("Authorization: AWS calls refused in the e2e, reliability and CLI suites", data["aws"]),
        _refused("Authorization: Kubernetes requests refused (403) in those suites", data["kubernetes"]),
        (
            "Tests of the run (reliability, e2e, sandbox)",
            "all pass",
            f"{len(outcomes) - len(failed_tests)}/{len(outcomes)} passed",
            not failed_tests,
        ),
    ]
    missed = [name for name, _, _, met in checks if not met]
    out = [
        "# Reliability and security, in figures",
        "",
        "Generated by `make reliability` (tools/reliability_report.py) from the suite in `tests/reliability/`: the real",
        "state machines and handlers in the local sandbox (moto's Step Functions interpreter, CNCF distribution",
        "registries, the Kubernetes API emulator), waits scaled to 1/100. Do not edit by hand.",
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
            ["fault", "outcome", "step / error", "injected", "step errors (retried, or caught and compensated)"],
            [
                (
                    f["kind"],
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
        "## 3. Replays",
        "",
        f"{replays.get('sent')} POSTs of one request (5 at once, one after it succeeded) → {replays.get('executions')} execution,",
        f"{replays.get('profiles')} Fargate profile, {replays.get('deployments')} Deployment. A different request for the",
        f"running app → {replays.get('conflict')}.",
        "",
        "## 4. Concurrency",
        "",
        *table(["figure", "value"], [(k.replace("_", " "), v) for k, v in crowd.items()]),
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
