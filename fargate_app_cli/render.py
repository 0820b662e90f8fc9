"""The readable output on stdout: one block per app (from its §3 document), and kubectl-like tables.

Plain text, laid out like kubectl's tables, so it reads the same in a terminal, a log and a README. The same
``outcome_block`` renders the sandbox's results and ``fargate-app status`` against a deployed stack, so the
two look alike; the sandbox adds tables of its live cluster (``kubectl get pods -o wide`` / ``kubectl get nodes``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from fargate_app.kube.rollout import parse_time, summarize_pod


def _age(timestamp: Any) -> str:
    """kubectl's AGE: the largest unit or two (``45s``, ``3m12s``, ``2h5m``, ``4d``)."""
    created = parse_time(timestamp)
    if created is None:
        return "<unknown>"
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60}m"
    return f"{seconds // 86400}d"


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """Columns left-aligned and three spaces apart, as kubectl's printer lays them out."""
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [
        "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [columns, *rows]
    ]
    return "\n".join(lines)


def pods_table(pods: list[dict[str, Any]]) -> str:
    """``kubectl get pods -A -o wide`` of Pod objects."""
    rows = []
    for pod in pods:
        summary = summarize_pod(pod)
        rows.append(
            [
                pod["metadata"]["namespace"],
                summary.name,
                summary.ready,
                summary.status,
                str(summary.restarts),
                _age(pod["metadata"].get("creationTimestamp")),
                summary.ip or "<none>",
                summary.node or "<none>",
            ]
        )
    return _table(["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"], rows)


def nodes_table(nodes: list[dict[str, Any]]) -> str:
    """``kubectl get nodes`` of Node objects."""
    rows = []
    for node in nodes:
        conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
        ready = {"True": "Ready", "False": "NotReady"}.get(str(conditions.get("Ready")), "Unknown")
        roles = [
            key.removeprefix("node-role.kubernetes.io/")
            for key in (node["metadata"].get("labels") or {})
            if key.startswith("node-role.kubernetes.io/")
        ]
        version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "<unknown>"
        rows.append(
            [
                node["metadata"]["name"],
                ready,
                ",".join(roles) or "<none>",
                _age(node["metadata"].get("creationTimestamp")),
                version,
            ]
        )
    return _table(["NAME", "STATUS", "ROLES", "AGE", "VERSION"], rows)


def _created(item: dict[str, Any] | None) -> str:
    return "created" if item and item.get("created") else "reused"


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing"


def _title(outcome: dict[str, Any]) -> str:
    request = outcome.get("request") or {}
    return f"{request.get('app', '?')} in {request.get('cluster', '?')}/{request.get('namespace', '?')}"


def teardown_line(teardown: dict[str, Any]) -> str:
    state = str(teardown["status"])
    if teardown.get("error"):
        state += f" at {teardown['error'].get('step') or '-'}: {teardown['error'].get('error')}"
    return f"{state}, left behind: {_listing(teardown.get('leftovers') or [])}"


def outcome_block(outcome: dict[str, Any]) -> str:
    """One app's document as ``label  value`` lines."""
    status = str(outcome.get("status"))
    lines: list[tuple[str, str]] = [("app", f"{_title(outcome)}: {status}")]
    if outcome.get("executionArn"):
        lines.append(("execution", str(outcome["executionArn"])))
    if status == "SUCCEEDED" and "image" in outcome:
        image = outcome["image"]
        role, profile, rule = outcome["podExecutionRole"], outcome["fargateProfile"], outcome["cacheRule"]
        deployment = outcome["deployment"]
        lines += [
            ("image", str(image["requested"])),
            ("cached as", str(image["cached"])),
            (
                "warmed",
                f"{image['platform']}, {image.get('layersWarmed', 0)} layers, {image.get('bytesWarmed', 0)} bytes",
            ),
            ("role", f"{role['arn']} ({_created(role)})"),
            ("profile", f"{profile['name']} {profile['status']} ({_created(profile)})"),
            ("cache rule", f"{rule['ecrRepositoryPrefix']} -> {rule['upstreamRegistryUrl']} ({_created(rule)})"),
            (
                "deployment",
                f"{deployment['namespace']}/{deployment['name']} {deployment.get('readyReplicas', 0)}/"
                f"{deployment.get('replicas', 0)} ready",
            ),
        ]
        lines += [
            ("pod", f"{pod['name']} {pod.get('status') or pod.get('phase')} on {pod.get('node')}")
            for pod in outcome.get("pods") or []
        ]
        if outcome.get("ingress"):
            lines.append(("ingress", str(outcome["ingress"])))
    elif status == "RUNNING":
        lines.append(("state", str(outcome.get("currentState") or "-")))
    elif outcome.get("error"):
        error = outcome["error"]
        lines += [
            ("failed at", f"{error.get('step') or '-'}: {error.get('error')}"),
            ("cause", str(error.get("cause"))),
            ("undone", _listing(error.get("compensated") or [])),
            ("left behind", _listing(error.get("leftovers") or [])),
        ]
    if outcome.get("teardown"):
        lines.append(("teardown", teardown_line(outcome["teardown"])))
    return "\n".join(f"{label:<12}{value}".rstrip() for label, value in lines)


def print_outcomes(out: TextIO, outcomes: list[dict[str, Any]]) -> None:
    for outcome in outcomes:
        print(outcome_block(outcome) + "\n", file=out)


def print_teardowns(out: TextIO, outcomes: list[dict[str, Any]]) -> None:
    for outcome in outcomes:
        if outcome.get("teardown"):
            print(f"{_title(outcome)}: teardown {teardown_line(outcome['teardown'])}", file=out)
    print(file=out)


def apps_table(apps: list[dict[str, Any]]) -> str:
    """GET /apps's page as ``fargate-app list`` prints it, newest first."""
    rows = [
        [
            f"{a.get('cluster')}/{a.get('namespace')}/{a.get('app')}",
            str(a.get("state") or "-"),
            str(a.get("revision") or "-"),
            str((a.get("image") or {}).get("requested") or "-"),
            _age(a.get("updatedAt")),
        ]
        for a in apps
    ]
    return _table(["APP", "STATE", "REVISION", "IMAGE", "UPDATED"], rows)


def print_cluster(out: TextIO, pods: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
    print("$ kubectl get pods -A -o wide", file=out)
    print(pods_table(pods) if pods else "No resources found", file=out)
    print("\n$ kubectl get nodes", file=out)
    print(nodes_table(nodes) if nodes else "No resources found", file=out)
    print(file=out, flush=True)
