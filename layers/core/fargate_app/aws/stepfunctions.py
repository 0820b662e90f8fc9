"""The Step Functions reads the package makes of one execution (its description, the newest page of its history),
behind one boundary: its errors translated, and an execution Step Functions does not know (expired after its 90
days, or of a deleted state machine) an answer, not a failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors

RUNNING = "RUNNING"


def describe_execution(arn: str) -> dict[str, Any] | None:
    """DescribeExecution's answer, or None when Step Functions does not know the execution.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    # DescribeExecution's errors (its service model): ExecutionDoesNotExist, InvalidArn and KMS refusals.
    with aws_errors(f"describe execution {arn}", absent={"ExecutionDoesNotExist"}):
        return dict(client("stepfunctions").describe_execution(executionArn=arn))
    return None


def still_runs(arn: str) -> bool:
    """Whether Step Functions says the execution runs (an unknown one does not).

    Raises:
        AwsThrottled, PermanentError: as ``describe_execution``.
    """
    described = describe_execution(arn)
    return described is not None and described.get("status") == RUNNING


# The history event that ends an execution → the status it ends with (Step Functions API reference, HistoryEvent).
ENDING_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
MAX_HISTORY_EVENTS = 1000


@dataclass(frozen=True)
class ExecutionTail:
    """What the newest page of an execution's history says: the state it entered last, and the status it ended with
    (None while it runs)."""

    current_state: str | None
    ended: str | None = None


def execution_tail(arn: str) -> ExecutionTail | None:
    """One GetExecutionHistory call, newest first and without inputs/outputs (smaller, and they may be large): a
    profile poll adds three events per retry, so one large page finds the latest state at once. Within the page the
    highest event id wins, so the answer does not depend on page order. None when Step Functions does not know the
    execution.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    with aws_errors(f"read the history of execution {arn}", absent={"ExecutionDoesNotExist"}) as gone:
        page = client("stepfunctions").get_execution_history(
            executionArn=arn, reverseOrder=True, includeExecutionData=False, maxResults=MAX_HISTORY_EVENTS
        )
    if gone.code:
        return None
    # Required by the service model: the page's events, each event's id and type, a state's name when entered.
    events = sorted(page["events"], key=lambda e: int(e["id"]), reverse=True)
    entered = next((e for e in events if str(e["type"]).endswith("StateEntered")), None)
    current = str(entered["stateEnteredEventDetails"]["name"]) if entered else None
    ending = next((e for e in events if e["type"] in ENDING_EVENTS), None)
    return ExecutionTail(current, ENDING_EVENTS[str(ending["type"])] if ending else None)
