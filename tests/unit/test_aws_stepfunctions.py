"""Step Functions as the API reads it: an execution described, and the tail of its history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber
from unit_support import stubbed

from fargate_app.aws.stepfunctions import ExecutionTail, describe_execution, execution_tail, still_runs
from fargate_app.errors import PermanentError

ARN = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:blog-fargate-demo-app-1"
NO_SUCH = f"Execution Does Not Exist: '{ARN}'"


@pytest.fixture
def stubbed_sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    with stubbed(monkeypatch, "fargate_app.aws.stepfunctions", "stepfunctions") as stubber:
        yield stubber


def event(number: int, kind: str, **details: object) -> dict[str, object]:
    return {"id": number, "type": kind, "timestamp": datetime(2025, 1, 1, tzinfo=UTC), **details}


def entered(number: int, state: str) -> dict[str, object]:
    return event(number, "TaskStateEntered", stateEnteredEventDetails={"name": state})


def test_an_unknown_execution_is_none_and_does_not_run(stubbed_sfn: Stubber) -> None:
    stubbed_sfn.add_client_error("describe_execution", "ExecutionDoesNotExist", NO_SUCH)
    stubbed_sfn.add_client_error("describe_execution", "ExecutionDoesNotExist", NO_SUCH)
    stubbed_sfn.add_client_error("get_execution_history", "ExecutionDoesNotExist", NO_SUCH)
    assert describe_execution(ARN) is None
    assert still_runs(ARN) is False
    assert execution_tail(ARN) is None


def test_any_other_refusal_names_the_execution(stubbed_sfn: Stubber) -> None:
    stubbed_sfn.add_client_error("describe_execution", "InvalidArn", "Invalid Arn: 'x'")
    stubbed_sfn.add_client_error("get_execution_history", "InvalidArn", "Invalid Arn: 'x'")
    with pytest.raises(PermanentError) as described:
        describe_execution(ARN)
    assert described.value.message == f"describe execution {ARN}: InvalidArn: Invalid Arn: 'x'"
    with pytest.raises(PermanentError) as read:
        execution_tail(ARN)
    assert read.value.message == f"read the history of execution {ARN}: InvalidArn: Invalid Arn: 'x'"


def test_the_tail_is_the_highest_numbered_state_entered_and_how_it_ended(stubbed_sfn: Stubber) -> None:
    # Given a page out of order: the newest events are the highest ids, whatever their place in the page
    page = [
        entered(2, "EnsureRole"),
        event(9, "ExecutionFailed", executionFailedEventDetails={"error": "ImageNotFound"}),
        event(3, "TaskStateExited", stateExitedEventDetails={"name": "EnsureRole"}),
        entered(5, "WarmCache"),
        event(1, "ExecutionStarted", executionStartedEventDetails={}),
        entered(4, "EnsureProfile"),
    ]
    stubbed_sfn.add_response(
        "get_execution_history",
        {"events": page},
        {"executionArn": ARN, "reverseOrder": True, "includeExecutionData": False, "maxResults": 1000},
    )
    assert execution_tail(ARN) == ExecutionTail("WarmCache", "FAILED")


def test_a_running_execution_before_its_first_state_has_no_state_yet(stubbed_sfn: Stubber) -> None:
    stubbed_sfn.add_response(
        "get_execution_history", {"events": [event(1, "ExecutionStarted", executionStartedEventDetails={})]}
    )
    assert execution_tail(ARN) == ExecutionTail(None, None)
