"""The harness fails executions as AWS Step Functions does where moto's interpreter alone is more lenient.

AWS Step Functions developer guide, "Handling errors in Step Functions workflows": a ``States.Runtime`` error "isn't
retriable, and will always cause the execution to fail. A retry or catch on States.ALL won't catch States.Runtime
errors"; a path that does not resolve in a state's input or output processing is such an error. Every Task and Map of
the fixture machine retries and catches ``States.ALL``: none of that may run for a runtime error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from figures import Figures

from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.sfn_semantics import dynamodb_error_name, lambda_error_name
from fargate_sandbox.workflows import Workflows

MACHINE = "RuntimeErrorsStateMachine"


def run_case(workflows: Workflows, case: str, **extra: Any) -> tuple[dict[str, Any], list[str]]:
    arn = workflows.start(MACHINE, {"case": case, "text": "a string", **extra})
    outcome = workflows.wait(arn)
    return outcome, workflows.state_order(arn)


RUNTIME_CASES = [
    # (case, the state's field, the cause AWS reports after "An error occurred while executing the state …")
    ("TaskParameters", "Parameters", "The JSONPath '$.missing' specified for the field 'wanted.$' could not be found"),
    ("TaskInputPath", "InputPath", "Invalid path '$.missing' : No results for path: $['missing']"),
    ("TaskResultSelector", "ResultSelector", "specified for the field 'wanted.$' could not be found"),
    ("TaskResultPath", "ResultPath", ""),
    ("TaskOutputPath", "OutputPath", "Invalid path '$.missing' : No results for path: $['missing']"),
    ("MapItemsPath", "ItemsPath", "Invalid path '$.missing' : No results for path: $['missing']"),
    ("WaitSecondsPath", "SecondsPath", "The SecondsPath parameter does not reference an input value: $.missing"),
    ("WaitTimestampPath", "TimestampPath", "$.missing"),
    (
        "ChoiceVariable",
        "Choice Variable",
        "Invalid path '$.missing': The choice state's condition path references an invalid value.",
    ),
]


@pytest.mark.parametrize(("case", "field", "cause"), RUNTIME_CASES, ids=[case for case, _, _ in RUNTIME_CASES])
def test_an_unresolved_path_fails_the_execution_with_states_runtime_past_retry_and_catch(
    workflows: Workflows, figures: Figures, case: str, field: str, cause: str
) -> None:
    # Given a state whose {field} names a path its input does not have, with Retry and Catch on States.ALL
    invocations_before = len(workflows.invocations("EchoFunction"))

    # When it runs
    outcome, states = run_case(workflows, case)
    figures.add(
        "runtime_errors",
        case=field,
        status=outcome["status"],
        error=outcome.get("error"),
        caught="Caught" in states,
        retried=len(workflows.invocations("EchoFunction")) - invocations_before > 1,
    )

    # Then the execution fails with States.Runtime, naming the state, and neither Retry nor Catch ran
    assert outcome["status"] == "FAILED", outcome
    assert outcome["error"] == "States.Runtime"
    assert outcome["cause"].startswith(f"An error occurred while executing the state '{case}'"), outcome["cause"]
    assert cause in outcome["cause"]
    assert "Caught" not in states
    assert len(workflows.invocations("EchoFunction")) - invocations_before <= 1  # never retried


def test_is_present_reads_a_missing_path_without_failing(workflows: Workflows) -> None:
    # Given a Choice rule testing IsPresent: false on a missing path
    # When it runs
    outcome, states = run_case(workflows, "ChoiceIsPresent")

    # Then it matches: IsPresent is the one rule for which a missing path is an answer, not an error
    assert outcome["status"] == "SUCCEEDED", outcome
    assert states == ["PickCase", "ChoiceIsPresent", "Done"]


def test_a_function_error_is_still_retried_then_caught(workflows: Workflows) -> None:
    # Given a task whose function keeps raising ImageNotFound (an error of the function, not a runtime error)
    key = f"control-{uuid.uuid4().hex[:6]}"

    # When it runs
    outcome, states = run_case(workflows, "TaskFailure", key=key)

    # Then Retry ran it three times (MaxAttempts 2) and Catch took it: the change touches runtime errors only
    assert outcome["status"] == "SUCCEEDED", outcome
    assert states == ["PickCase", "TaskFailure", "Caught", "Done"]
    assert [i.error_type for i in workflows.invocations("FlakyFunction")][-3:] == ["ImageNotFound"] * 3


def test_a_lambda_service_error_keeps_its_lambda_name(workflows: Workflows, sandbox: Sandbox) -> None:
    # Given Lambda's Invoke failing with its own ServiceException (500) three times, then a throttle
    sandbox.faults.fail_aws("lambda:Invoke", 3, "ServiceException", "Lambda is unavailable", status=500)

    # When a task invokes its function (Retry States.ALL × 2, then Catch States.ALL into $.error)
    arn = workflows.start(MACHINE, {"case": "LambdaService"})
    outcome = workflows.wait(arn)

    # Then the error the Catch received is Lambda.ServiceException, as Step Functions names it (not "Exception")
    assert outcome["status"] == "SUCCEEDED", outcome
    failures = [e for e in workflows.history(arn) if e["type"] == "LambdaFunctionFailed"]
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failures] == ["Lambda.ServiceException"] * 3
    assert workflows.state_order(arn) == ["PickCase", "LambdaService", "Caught", "Done"]


@pytest.mark.parametrize(
    ("name_of", "code", "expected"),
    [
        (lambda_error_name, "ServiceException", "Lambda.ServiceException"),
        (lambda_error_name, "TooManyRequestsException", "Lambda.TooManyRequestsException"),
        (lambda_error_name, "ResourceNotFoundException", "Lambda.ResourceNotFoundException"),
        (lambda_error_name, "SomethingNew", "Lambda.AWSLambdaException"),
        (dynamodb_error_name, "ConditionalCheckFailedException", "DynamoDB.ConditionalCheckFailedException"),
        (
            dynamodb_error_name,
            "ProvisionedThroughputExceededException",
            "DynamoDB.ProvisionedThroughputExceededException",
        ),
        (dynamodb_error_name, "InternalFailure", "DynamoDB.AmazonDynamoDBException"),
    ],
)
def test_service_error_names_follow_the_service_api_model(
    name_of: Callable[[Exception], str], code: str, expected: str
) -> None:
    # Given a Lambda Invoke or a DynamoDB call failing with a code its API models, or with one it does not
    error = ClientError({"Error": {"Code": code, "Message": "m"}}, "Call")

    # Then the name is Step Functions' <Service>.<exception>, the SDK's base exception for the unmodelled
    assert name_of(error) == expected


def test_a_lambda_invoke_that_reaches_no_service_is_an_sdk_client_error() -> None:
    assert lambda_error_name(EndpointConnectionError(endpoint_url="http://x")) == "Lambda.SdkClientException"


def test_executions_share_one_parse_of_their_definition_and_keep_their_own_retries(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the machine has run once (its definition parsed), and the ASL parser counted from now on
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    run_case(workflows, "ChoiceIsPresent")
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse
    monkeypatch.setattr(
        AmazonStateLanguageParser, "parse", staticmethod(lambda text: parses.append(text) or parse(text))
    )

    # When two executions whose task fails run at the same time (Retry MaxAttempts 2, then Catch)
    arns = [workflows.start(MACHINE, {"case": "TaskFailure", "key": f"share-{uuid.uuid4().hex[:6]}"}) for _ in "ab"]
    outcomes = [workflows.wait(arn) for arn in arns]

    # Then neither parsed the definition again, and each ran its own three attempts before its Catch: the retry count
    # lives in each execution's environment, not in the program they share
    assert parses == []
    assert [outcome["status"] for outcome in outcomes] == ["SUCCEEDED", "SUCCEEDED"], outcomes
    for arn in arns:
        failures = [e for e in workflows.history(arn) if e["type"] == "LambdaFunctionFailed"]
        assert len(failures) == 3, failures
        assert workflows.state_order(arn) == ["PickCase", "TaskFailure", "Caught", "Done"]


@pytest.mark.parametrize(("case", "status"), [("ChoiceIsPresent", "SUCCEEDED"), ("TaskParameters", "FAILED")])
def test_an_ended_status_is_published_after_the_output_or_error(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch, case: str, status: str
) -> None:
    # Given every assignment of an execution's status watched, with what the execution held at that moment
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import Execution

    seen: list[tuple[Any, Any, Any, Any]] = []  # (status, output, error, stop date) at each assignment
    assign = Execution.__setattr__

    def watched(self: Any, name: str, value: Any) -> None:
        if name == "exec_status" and value not in (None, ExecutionStatus.RUNNING):
            seen.append((value, self.output, self.error, self.stop_date))
        assign(self, name, value)

    monkeypatch.setattr(Execution, "__setattr__", watched)

    # When an execution succeeds, or fails
    outcome, _ = run_case(workflows, case)
    assert outcome["status"] == status, outcome

    # Then a reader on another thread who sees it ended sees its output (or error) and stop date with it
    [(published, output, error, stopped)] = seen
    assert published == ExecutionStatus(status)
    assert stopped is not None
    assert (output is not None) if status == "SUCCEEDED" else (error == "States.Runtime")
