"""The Step Functions reads the package makes of one execution, behind one boundary: its errors translated, and an
execution Step Functions does not know (expired after its 90 days, or of a deleted state machine) an answer, not a
failure."""

from __future__ import annotations

from typing import Any

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors

RUNNING = "RUNNING"


def describe_execution(arn: str) -> dict[str, Any] | None:
    """DescribeExecution's answer, or None when Step Functions does not know the execution.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    with aws_errors(f"describe execution {arn}", absent={"ExecutionDoesNotExist", "StateMachineDoesNotExist"}):
        return dict(client("stepfunctions").describe_execution(executionArn=arn))
    return None


def still_runs(arn: str) -> bool:
    """Whether Step Functions says the execution runs (an unknown one does not).

    Raises:
        AwsThrottled, PermanentError: as ``describe_execution``.
    """
    described = describe_execution(arn)
    return described is not None and described.get("status") == RUNNING
