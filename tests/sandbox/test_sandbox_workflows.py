"""The workflow harness: ASL run by moto's real Step Functions interpreter, Lambda tasks dispatched in process to
real handler modules with the template's environment, scaled Wait/Retry sleeps, EventBridge starts.

The template, ASL and handlers are the fixture in ``fixtures/workflows`` (not production's, which evolve on their own).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sandbox_test_support import unique

from fargate_sandbox.events import cloudtrail_event
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.template_model import Deployment, TemplateError, load_template
from fargate_sandbox.workflows import Workflows

FIXTURE = Path(__file__).parent / "fixtures" / "workflows"
TEMPLATE = FIXTURE / "template.yaml"
TIME_SCALE = 0.0001  # a one-hour Wait lasts 0.36 s; the 30 s → 60 s retry pauses a few milliseconds
ONE_HOUR = 3600


@pytest.fixture
def workflows(sandbox: Sandbox) -> Iterator[Workflows]:
    with Workflows(sandbox, TEMPLATE, time_scale=TIME_SCALE, environment={"ROLLOUT_GRACE_SECONDS": "1"}) as running:
        yield running


def output_of(outcome: dict[str, Any]) -> Any:
    return json.loads(outcome["output"])


def history_types(workflows: Workflows, arn: str) -> list[str]:
    return [event["type"] for event in workflows.history(arn)]


def executions_started_by_events(workflows: Workflows, count: int, timeout_s: float = 10.0) -> list[str]:
    """EventBridge delivers after the API answer, on the front's thread: poll until the executions exist."""
    deadline = time.monotonic() + timeout_s
    while len(workflows.executions()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return workflows.executions()


# --- dispatch and environment -----------------------------------------------------------------------------------------
def test_task_runs_the_real_handler_with_the_template_environment_and_a_lambda_context(workflows: Workflows) -> None:
    # Given the echo state machine, whose ASL gets a DefinitionSubstitution built from a template parameter
    # When an execution runs
    arn = workflows.start("EchoStateMachine", {"app": "web"})
    outcome = workflows.wait(arn)

    # Then the handler module ran in process and saw what Lambda would give it
    assert outcome["status"] == "SUCCEEDED", outcome
    echoed = output_of(outcome)
    assert echoed["event"] == {"greeting": "hello-from-parameter-in-asl", "input": {"app": "web"}}
    assert echoed["environment"] == {
        "FIXTURE_GREETING": "hello-from-parameter",  # Globals, !Ref of a parameter default
        "FIXTURE_ECHO_ONLY": "echo-specific",  # the function's own variable
        "FIXTURE_RETRY_MACHINE": "arn:aws:states:us-west-2:111122223333:stateMachine:RetryCatchStateMachine",
    }
    assert echoed["settings"] == {"account_id": "111122223333", "rollout_grace_seconds": 1}  # override won over "5"
    assert echoed["context"]["function_name"] == "EchoFunction"
    assert echoed["context"]["memory_limit_in_mb"] == 384
    assert echoed["context"]["invoked_function_arn"] == "arn:aws:lambda:us-west-2:111122223333:function:EchoFunction"
    assert 0 < echoed["context"]["remaining_ms"] <= 10_000  # Globals Timeout: 10
    assert "blog" in echoed["clusters"]  # its boto3 client reached the sandbox through AWS_ENDPOINT_URL
    assert workflows.state_order(arn) == ["Echo"]
    assert [invocation.function for invocation in workflows.invocations()] == ["EchoFunction"]
    assert workflows.invocations()[0].error_type is None


def test_a_later_harness_in_the_same_process_reads_its_own_settings(sandbox: Sandbox) -> None:
    # Given two harnesses one after the other in this process, each with its own ROLLOUT_GRACE_SECONDS
    seen = []
    for grace in ("3", "7"):
        with Workflows(
            sandbox, TEMPLATE, time_scale=TIME_SCALE, environment={"ROLLOUT_GRACE_SECONDS": grace}
        ) as harness:
            echoed = output_of(harness.wait(harness.start("EchoStateMachine", {})))
            seen.append(echoed["settings"]["rollout_grace_seconds"])
    # Then each handler saw its harness's value, never settings cached by the one before
    assert seen == [3, 7]


def test_each_function_runs_in_an_environment_of_its_own_and_this_process_is_left_alone(sandbox: Sandbox) -> None:
    # Given the process environment before the harness
    before = dict(os.environ)

    # When a handler runs
    with Workflows(sandbox, TEMPLATE, time_scale=TIME_SCALE) as harness:
        echoed = output_of(harness.wait(harness.start("EchoStateMachine", {})))
        during = dict(os.environ)

    # Then it ran in a process of its own (Lambda's execution environment) with the function's own variables and
    # what Lambda adds, while this process's environment never changed
    assert echoed["pid"] != os.getpid()
    assert echoed["lambda"] == {
        "AWS_LAMBDA_FUNCTION_NAME": "EchoFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "384",
        "AWS_REGION": "us-west-2",
        "AWS_ENDPOINT_URL": sandbox.endpoint_url,
    }
    assert during == before == dict(os.environ)


def test_two_functions_may_give_one_variable_different_values(tmp_path: Path) -> None:
    # Given a template where two functions give one variable different values
    for name in ("one", "two"):
        shutil.copytree(FIXTURE / "functions" / "flaky", tmp_path / name)
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  OneFunction:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: one/, Handler: app.lambda_handler,"
        " Environment: {Variables: {POLL_MAX_SECONDS: '30'}}}\n"
        "  TwoFunction:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: two/, Handler: app.lambda_handler,"
        " Environment: {Variables: {POLL_MAX_SECONDS: '60'}}}\n"
    )

    # When it is loaded, then each function keeps its own value (each runs in its own execution environment)
    template = load_template(tmp_path / "template.yaml", Deployment("111122223333", "us-west-2"))
    assert template.functions["OneFunction"].environment == {"POLL_MAX_SECONDS": "30"}
    assert template.functions["TwoFunction"].environment == {"POLL_MAX_SECONDS": "60"}


def test_every_placeholder_of_an_asl_needs_a_substitution(tmp_path: Path) -> None:
    # Given a state machine whose ASL uses ${Missing}, which DefinitionSubstitutions does not give
    (tmp_path / "machine.asl.json").write_text(
        '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Missing}", "End": true}}}'
    )
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Machine:\n"
        "    Type: AWS::Serverless::StateMachine\n"
        "    Properties: {DefinitionUri: machine.asl.json, DefinitionSubstitutions: {Other: x}}\n"
    )
    template = load_template(tmp_path / "template.yaml", Deployment("111122223333", "us-west-2"))

    # When its definition is rendered, then the missing substitution is named
    with pytest.raises(TemplateError, match=r"\$\{Missing\}"):
        template.state_machines["Machine"].definition()


# --- errors as the contract ---------------------------------------------------------------------------------------------
def test_retry_matches_our_exception_class_name_and_retries_until_success(workflows: Workflows) -> None:
    # Given a handler raising fargate_app.errors.ProfileOperationInProgress twice, then succeeding
    request = {"key": unique("retry"), "fail_times": 2, "error": "ProfileOperationInProgress"}

    # When the state with Retry [ProfileOperationInProgress] × 3 (IntervalSeconds 30, backoff 2) runs
    arn = workflows.start("RetryCatchStateMachine", request)
    outcome = workflows.wait(arn)

    # Then it was attempted three times and succeeded, without sleeping the 90 s of intervals
    assert outcome["status"] == "SUCCEEDED", outcome
    assert output_of(outcome)["result"] == {"attempts": 3}
    assert history_types(workflows, arn).count("TaskScheduled") == 3
    assert [invocation.error_type for invocation in workflows.invocations("FlakyFunction")] == [
        "ProfileOperationInProgress",
        "ProfileOperationInProgress",
        None,
    ]


def test_retries_are_bounded_by_max_attempts(workflows: Workflows) -> None:
    # Given a handler that keeps raising ProfileOperationInProgress
    request = {"key": unique("exhaust"), "fail_times": 99, "error": "ProfileOperationInProgress"}

    # When the state runs
    outcome = workflows.wait(workflows.start("RetryCatchStateMachine", request))

    # Then the first attempt and MaxAttempts 3 retries ran, and the execution failed with the class name
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "ProfileOperationInProgress"
    assert len(workflows.invocations("FlakyFunction")) == 4


def test_catch_matches_a_permanent_error_and_fail_reports_it_through_error_and_cause_paths(
    workflows: Workflows,
) -> None:
    # Given a handler raising fargate_app.errors.ImageNotFound
    request = {"key": unique("catch"), "fail_times": 1, "error": "ImageNotFound"}

    # When the state runs
    arn = workflows.start("RetryCatchStateMachine", request)
    outcome = workflows.wait(arn)

    # Then it is not retried, Catch routes to compensation, and Fail carries the Lambda error document
    assert workflows.state_order(arn) == ["EnsureThing", "Compensate", "Failed"]
    assert len(workflows.invocations("FlakyFunction")) == 1
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "ImageNotFound"
    cause = json.loads(outcome["cause"])
    assert cause["errorType"] == "ImageNotFound"
    assert cause["errorMessage"] == f"attempt 1 of {request['key']} failed on purpose"
    assert cause["requestId"] == workflows.invocations("FlakyFunction")[0].request_id
    assert "flaky/app.py" in cause["stackTrace"][-1]


def test_a_function_running_past_its_timeout_fails_the_task_with_sandbox_timedout(workflows: Workflows) -> None:
    # Given the slow function (Timeout: 1) asked to work for longer than that
    arn = workflows.start("TimeoutStateMachine", {"seconds": 1.3})

    # When the execution runs
    outcome = workflows.wait(arn)

    # Then the task failed as a timed-out Lambda does, and Catch matched the error by its name
    assert outcome["status"] == "SUCCEEDED", outcome
    error = output_of(outcome)["error"]
    assert error["Error"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in json.loads(error["Cause"])["errorMessage"]
    assert workflows.state_order(arn) == ["Slow", "TimedOut"]
    assert [invocation.error_type for invocation in workflows.invocations("SlowFunction")] == ["Sandbox.Timedout"]


def test_a_cold_start_init_phase_is_not_on_the_function_clock(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given a function (Timeout: 1) whose module takes 1.5 s to import, in no execution environment yet
    workflows.dispatcher.recycle("SlowInitFunction")
    lambda_client = sandbox.boto3_client("lambda")

    # When it is invoked cold
    answer = lambda_client.invoke(FunctionName="SlowInitFunction", Payload=b"{}")

    # Then the init phase ran on its own 10 s (Lambda's Init phase), and the handler got its whole second after it
    assert "FunctionError" not in answer, json.loads(answer["Payload"].read())
    assert json.loads(answer["Payload"].read())["remaining_ms"] > 500
    invocation = workflows.invocations("SlowInitFunction")[-1]
    assert (invocation.cold_start, invocation.error_type) == (True, None)


# --- time ---------------------------------------------------------------------------------------------------------------
def test_a_wait_of_an_hour_from_seconds_path_is_scaled_down(workflows: Workflows) -> None:
    # Given a Wait whose SecondsPath asks for one hour
    arn = workflows.start("WaitStateMachine", {"wait_seconds": ONE_HOUR, "key": unique("wait")})

    # When the execution runs, then it completes well within wait()'s 30 s
    outcome = workflows.wait(arn, timeout_s=30)

    # And the Wait really was entered and left before the next task
    assert outcome["status"] == "SUCCEEDED", outcome
    assert workflows.state_order(arn) == ["WaitAsAsked", "AfterWait"]
    entered, exited = (
        event["timestamp"]
        for event in workflows.history(arn)
        if event["type"] in ("WaitStateEntered", "WaitStateExited")
    )
    assert (exited - entered).total_seconds() < ONE_HOUR


# --- concurrency ----------------------------------------------------------------------------------------------------------
def test_two_executions_run_their_handlers_at_the_same_time(workflows: Workflows) -> None:
    # Given a handler that returns only when two invocations are inside it together (a barrier, 10 s limit)
    meeting = {"key": unique("meet"), "parties": 2}

    # When two executions start
    first = workflows.start("RendezvousStateMachine", meeting)
    second = workflows.start("RendezvousStateMachine", meeting)

    # Then both succeed: their handler calls overlapped, each in an execution environment of its own
    outcomes = [workflows.wait(first), workflows.wait(second)]
    assert [outcome["status"] for outcome in outcomes] == ["SUCCEEDED", "SUCCEEDED"], outcomes
    assert [output_of(outcome)["met"] for outcome in outcomes] == [True, True]
    cold = [i.cold_start for i in workflows.invocations("RendezvousFunction")][-2:]
    assert cold.count(True) >= 1  # the second one could not use the first one's busy environment


def test_closing_stops_running_executions(sandbox: Sandbox) -> None:
    # Given an execution parked in a one-hour Wait (unscaled)
    with Workflows(sandbox, TEMPLATE, time_scale=1.0) as harness:
        arn = harness.start("WaitStateMachine", {"wait_seconds": ONE_HOUR, "key": unique("park")})
        sfn = sandbox.boto3_client("stepfunctions")

    # When the harness closed, then the execution was stopped rather than left running
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"


# --- EventBridge ----------------------------------------------------------------------------------------------------------
def test_creating_a_pull_through_cache_rule_starts_the_rule_target_with_the_event(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    # Given the template's EventBridgeRule on CloudTrail's CreatePullThroughCacheRule
    prefix = f"wf-{uuid.uuid4().hex[:8]}"

    # When a rule is created through the sandbox's ECR API
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws"
    )

    # Then one execution of the target state machine started, with the whole event as its input
    (arn,) = executions_started_by_events(workflows, 1)
    outcome = workflows.wait(arn)
    assert outcome["status"] == "SUCCEEDED", outcome
    event = output_of(outcome)["event"]["input"]
    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == "AWS API Call via CloudTrail"
    assert event["detail"]["eventName"] == "CreatePullThroughCacheRule"
    assert event["detail"]["requestParameters"]["ecrRepositoryPrefix"] == prefix
    machine_arn = workflows.state_machine_arns["EchoStateMachine"]
    assert arn.startswith(machine_arn.replace(":stateMachine:", ":execution:") + ":")


def test_the_template_rule_ignores_other_ecr_calls(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given CloudTrail-shaped events for the delete of a rule and for the create
    def event_for(name: str) -> dict[str, Any]:
        return cloudtrail_event(
            service="ecr",
            event_name=name,
            account_id=sandbox.account_id,
            region=sandbox.region,
            request_parameters={"ecrRepositoryPrefix": "x"},
            response_elements={},
        )

    # When they are matched against the sandbox's rules, then only the create matches the template's rule
    rule = workflows.template.event_rules[0].name
    assert rule in sandbox.events.matching_rules(event_for("CreatePullThroughCacheRule"))
    assert rule not in sandbox.events.matching_rules(event_for("DeletePullThroughCacheRule"))


def test_only_one_harness_is_open_per_process(sandbox: Sandbox, workflows: Workflows) -> None:
    # Given an open harness, when a second one opens, then it is refused (the interpreter patches are per process)
    with pytest.raises(RuntimeError, match="another Workflows is open"):
        Workflows(sandbox, TEMPLATE).open()
    # And the first one still works
    assert workflows.wait(workflows.start("EchoStateMachine", {}))["status"] == "SUCCEEDED"


def test_execution_environments_do_not_outlive_the_harness(sandbox: Sandbox) -> None:
    # Given a harness that ran a handler
    with Workflows(sandbox, TEMPLATE, time_scale=TIME_SCALE) as harness:
        harness.wait(harness.start("EchoStateMachine", {}))
        assert harness.dispatcher.environments() >= 1

    # Then no Lambda worker process is left once it closed
    assert not [child.name for child in multiprocessing.active_children() if child.name.startswith("lambda-")]


# --- the Lambda Invoke API itself ---------------------------------------------------------------------------------------
def test_invoke_answers_like_lambda_for_template_functions_and_leaves_others_to_moto(
    sandbox: Sandbox, workflows: Workflows
) -> None:
    lambda_client = sandbox.boto3_client("lambda")
    key = unique("invoke")

    # When a template function raises, by name, then Lambda's 200 + FunctionError "Unhandled" + error document
    failed = lambda_client.invoke(
        FunctionName="FlakyFunction", Payload=json.dumps({"key": key, "fail_times": 1, "error": "RoleConflict"})
    )
    assert failed["StatusCode"] == 200
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "RoleConflict"

    # When it succeeds, by ARN with a qualifier, then its result and the version that ran
    succeeded = lambda_client.invoke(
        FunctionName="arn:aws:lambda:us-west-2:111122223333:function:FlakyFunction:$LATEST",
        Payload=json.dumps({"key": key}),
    )
    assert "FunctionError" not in succeeded
    assert succeeded["ExecutedVersion"] == "$LATEST"
    assert json.loads(succeeded["Payload"].read()) == {"attempts": 2}

    # When a function the template does not define is invoked, then moto answers as Lambda: not found
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="NotInTheTemplate", Payload=b"{}")
