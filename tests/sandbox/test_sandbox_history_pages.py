"""GetExecutionHistory answers in pages as Step Functions does (API reference: maxResults "default is 100 and the
maximum allowed page size is 1000"; ``nextToken`` for the next page; 400 ``InvalidToken`` for a token it did not
give); moto answered every event in one page."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.sfn_paging import InvalidToken, history_page
from fargate_sandbox.workflows import Workflows

ARN = "arn:aws:states:us-west-2:111122223333:execution:machine:run"


def events(count: int) -> list[dict[str, Any]]:
    return [{"id": n, "type": "TaskStateEntered"} for n in range(1, count + 1)]


def test_a_call_without_max_results_answers_the_first_hundred_events_and_a_token_for_the_rest() -> None:
    # Given a history of 250 events
    history = events(250)

    # When it is read page by page without maxResults, as a paginator does
    pages = [history_page(history, {"executionArn": ARN})]
    while "nextToken" in pages[-1]:
        pages.append(history_page(history, {"executionArn": ARN, "nextToken": pages[-1]["nextToken"]}))

    # Then the pages hold 100, 100 and 50 events, in order, and only the last has no token
    assert [len(page["events"]) for page in pages] == [100, 100, 50]
    assert [event for page in pages for event in page["events"]] == history


@pytest.mark.parametrize(("max_results", "sizes"), [(0, [100, 20]), (1000, [120]), (60, [60, 60]), (7, [7] * 17 + [1])])
def test_max_results_sets_the_page_size_and_zero_means_the_default(max_results: int, sizes: list[int]) -> None:
    history = events(120)
    pages = [history_page(history, {"executionArn": ARN, "maxResults": max_results})]
    while "nextToken" in pages[-1]:
        token = pages[-1]["nextToken"]
        pages.append(history_page(history, {"executionArn": ARN, "maxResults": max_results, "nextToken": token}))
    assert [len(page["events"]) for page in pages] == sizes


@pytest.mark.parametrize("token", ["not-a-token", "eyJvZmZzZXQiOiAzfQ==", "AAAA"])
def test_a_token_the_history_did_not_give_is_invalid(token: str) -> None:
    with pytest.raises(InvalidToken):
        history_page(events(10), {"executionArn": ARN, "nextToken": token})


def test_a_token_of_another_execution_is_invalid() -> None:
    first = history_page(events(150), {"executionArn": ARN})
    with pytest.raises(InvalidToken):
        history_page(events(150), {"executionArn": f"{ARN}-other", "nextToken": first["nextToken"]})


def test_the_front_pages_a_real_history_and_refuses_a_foreign_token(workflows: Workflows, sandbox: Sandbox) -> None:
    # Given an execution that ended
    arn = workflows.start("EchoStateMachine", {"app": "web"})
    assert workflows.wait(arn)["status"] == "SUCCEEDED"
    whole = workflows.history(arn)
    sfn = sandbox.boto3_client("stepfunctions")

    # When its history is read two events a page, newest first
    first = sfn.get_execution_history(executionArn=arn, maxResults=2, reverseOrder=True)
    rest = sfn.get_execution_history(executionArn=arn, maxResults=2, reverseOrder=True, nextToken=first["nextToken"])

    # Then the pages are the newest events, two each, with a token for the next; the paginator's pages (oldest first)
    # hold every event once; and a made-up token is answered 400 InvalidToken
    assert len(whole) > 4
    assert [len(first["events"]), len(rest["events"]), "nextToken" in rest] == [2, 2, True]
    assert [e["id"] for e in first["events"] + rest["events"]] == [e["id"] for e in reversed(whole)][:4]
    assert [e["id"] for e in whole] == list(range(1, len(whole) + 1))
    with pytest.raises(ClientError) as raised:
        sfn.get_execution_history(executionArn=arn, nextToken="not-a-token")
    assert (raised.value.response["Error"]["Code"], raised.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidToken",
        400,
    )


def test_without_execution_data_the_events_keep_everything_but_their_input_and_output() -> None:
    # Given a history whose events carry input and output in their details
    history = [
        {"id": 1, "type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}", "roleArn": "arn:role"}},
        {"id": 2, "type": "TaskStateExited", "stateExitedEventDetails": {"name": "ApplyApp", "output": "{}"}},
    ]

    # When it is read without execution data, and with it (the default)
    without = history_page(history, {"executionArn": ARN, "includeExecutionData": False})["events"]
    default = history_page(history, {"executionArn": ARN})["events"]

    # Then only the input and output are left out
    assert without == [
        {"id": 1, "type": "ExecutionStarted", "executionStartedEventDetails": {"roleArn": "arn:role"}},
        {"id": 2, "type": "TaskStateExited", "stateExitedEventDetails": {"name": "ApplyApp"}},
    ]
    assert default == history
