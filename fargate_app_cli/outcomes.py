"""docs/design.md §3 documents made from the API's answers, the same for the sandbox and a deployed stack.

``GET /apps/{cluster}/{namespace}/{app}`` answers the app's latest execution: ``status``, ``kind``, ``result`` (the
execution's output when it succeeded) and ``error`` (``{"error", "cause"}`` otherwise). A provision's failure cause
is the JSON the Compensate step writes (``{"step", "error", "cause", "compensated", "leftovers"}``); anything else
(an execution stopped from the console, a timeout) keeps its cause as text.
"""

from __future__ import annotations

import json
from typing import Any

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"


def failure(error: dict[str, Any] | None, status: str) -> dict[str, Any]:
    """``{"step", "error", "cause", "compensated", "leftovers"}`` from the API's ``error``."""
    error = error or {}
    name = str(error.get("error") or f"States.{status.title()}")
    cause_text = str(error.get("cause") or "")
    try:
        cause = json.loads(cause_text)
    except ValueError:
        cause = None
    if not isinstance(cause, dict):
        return {"step": None, "error": name, "cause": cause_text, "compensated": [], "leftovers": []}
    return {
        "step": cause.get("step"),
        "error": str(cause.get("error") or name),
        "cause": str(cause.get("cause") or cause_text),
        "compensated": list(cause.get("compensated") or []),
        "leftovers": list(cause.get("leftovers") or []),
    }


def provision_outcome(answer: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    """The §3 result of a finished provision, or ``{"status": "FAILED", …, "error": …}``; a running one is
    ``{"status": "RUNNING", "currentState": …}``."""
    status = str(answer.get("status"))
    if status == SUCCEEDED and isinstance(answer.get("result"), dict):
        return dict(answer["result"])
    document: dict[str, Any] = {"status": status, "executionArn": answer.get("executionArn"), "request": request}
    if status == RUNNING:
        document["currentState"] = answer.get("currentState")
    else:
        document["error"] = failure(answer.get("error"), status)
    return document


def _result(answer: dict[str, Any]) -> dict[str, Any]:
    result = answer.get("result")
    return result if isinstance(result, dict) else {}


def teardown_record(answer: dict[str, Any]) -> dict[str, Any]:
    """``{"status", "executionArn", "leftovers"}`` (+ ``deleted``, ``fargateProfile`` or ``error``) of a teardown."""
    status = str(answer.get("status"))
    record: dict[str, Any] = {"status": status, "executionArn": answer.get("executionArn")}
    result = _result(answer)
    if status == SUCCEEDED:
        record["leftovers"] = list(result.get("leftovers") or [])
        record["deleted"] = result.get("deleted")
        record["fargateProfile"] = result.get("fargateProfile")
    elif status == RUNNING:
        record["currentState"] = answer.get("currentState")
        record["leftovers"] = []
    else:
        record["error"] = failure(answer.get("error"), status)
        record["leftovers"] = list(record["error"]["leftovers"])
    return record


def status_document(answer: dict[str, Any]) -> dict[str, Any]:
    """What ``fargate-app status`` shows: the provision's outcome, or — when the app's latest execution is its
    teardown — the teardown record under ``teardown`` (with the request it tore down)."""
    if answer.get("kind") == "teardown":
        result = _result(answer)
        return {
            "status": answer.get("status"),
            "request": result.get("request"),
            "teardown": teardown_record(answer),
        }
    return provision_outcome(answer)


def succeeded(outcome: dict[str, Any]) -> bool:
    """The provision succeeded and, when it was torn down, so did the teardown, leaving nothing behind."""
    teardown = outcome.get("teardown")
    if teardown is None:
        return outcome.get("status") == SUCCEEDED
    return outcome.get("status") == SUCCEEDED and teardown.get("status") == SUCCEEDED and not teardown.get("leftovers")
