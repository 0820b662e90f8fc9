"""The API's execution bookkeeping (fargate_app/api/executions.py) against moto's Step Functions and DynamoDB: what
an app's item says its newest execution is, the start dates noted for the status document, replays, races that only
AWS produces (botocore's Stubber, the real service model) and the execution names of docs/design.md §3."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import ACCOUNT, CALLER, REGION, REQUEST, finish, provision_result, settings
from botocore.stub import ANY, Stubber
from unit_support import clock_stopped_at

from fargate_app.api import executions
from fargate_app.api.executions import (
    CLOCK_SKEW,
    MAX_CAUSE,
    AppRef,
    ExecutionConflict,
    NewestExecution,
    attempt_of,
    closed_error,
    execution_arn,
    newest_execution,
    start_provision,
    start_teardown,
)
from fargate_app.aws.clients import client
from fargate_app.inventory import app_key, canonical_json, read_item
from fargate_app.models import parse_request

pytestmark = pytest.mark.usefixtures("aws")
APP = AppRef("blog", "fargate", "demo-app")
KEY = app_key(APP.cluster, APP.namespace, APP.app)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WINNER_STARTED = datetime(2026, 12, 1, 9, 59, 30, tzinfo=UTC)


STOPPED = clock_stopped_at(NOW)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executions, "datetime", STOPPED)


def frozen(moment: datetime) -> datetime:
    """``moment`` as the stopped clock's class (what the module's isinstance checks see)."""
    return STOPPED.fromtimestamp(moment.timestamp(), UTC)


def request() -> Any:
    return parse_request(REQUEST, region=REGION, account=ACCOUNT)


def put_item(**attributes: Any) -> None:
    from boto3.dynamodb.types import TypeSerializer

    typed = {name: TypeSerializer().serialize(value) for name, value in {"app": KEY, **attributes}.items()}
    client("dynamodb").put_item(TableName=settings().apps_table_name, Item=typed)


def noted_start() -> str:
    item = read_item(settings(), KEY) or {}
    return str(item["pendingStart"])


def stub_start_attempts(stub: Stubber, machine: str, names: list[str], winner_input: Any = None) -> None:
    """Each name refused as taken; DescribeExecution answers ExecutionDoesNotExist for all but the last, which runs
    with ``winner_input`` since WINNER_STARTED (None: that one is gone too)."""
    for index, name in enumerate(names):
        arn = execution_arn(machine, name)
        stub.add_client_error(
            "start_execution", "ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'", 400,
            expected_params={"stateMachineArn": machine, "name": name, "input": ANY},
        )  # fmt: skip
        if index == len(names) - 1 and winner_input is not None:
            winner = {"stateMachineArn": machine, "status": "RUNNING", "startDate": WINNER_STARTED}
            stub.add_response(
                "describe_execution",
                {"executionArn": arn, **winner, "input": json.dumps(winner_input)},
                {"executionArn": arn},
            )
        else:
            stub.add_client_error(
                "describe_execution", "ExecutionDoesNotExist", "Execution Does Not Exist", 400, {"executionArn": arn}
            )


# --- the app's newest execution, as its item records it ---
def test_a_recorded_execution_keeps_its_dates_and_status_when_step_functions_no_longer_knows_it(
    machines: dict[str, str],
) -> None:
    # Given an item recording a succeeded provision, the API's note of the same execution (a replay noted it again),
    # and Step Functions that no longer knows that execution
    arn = execution_arn(machines["provision"], "gone-long-ago")
    put_item(
        executionArn=arn,
        kind="provision",
        executionStatus="SUCCEEDED",
        startDate="2026-11-01T09:00:00Z",
        stopDate="2026-11-01T09:05:00.250Z",
        pendingExecution=arn,
        pendingKind="teardown",
        pendingStart="2026-11-02T00:00:00Z",
    )
    # When the newest execution is read
    newest = newest_execution(read_item(settings(), KEY) or {})
    # Then it is the recorded one, with the item's dates and status (no note of another execution)
    assert newest == NewestExecution(
        arn,
        "provision",
        "SUCCEEDED",
        datetime(2026, 11, 1, 9, tzinfo=UTC),
        datetime(2026, 11, 1, 9, 5, 0, 250000, tzinfo=UTC),
    )


def test_a_noted_execution_is_running_from_its_noted_start(machines: dict[str, str]) -> None:
    # Given an item holding only the API's note of a teardown it started
    started = client("stepfunctions").start_execution(stateMachineArn=machines["teardown"], name="t-1", input="{}")
    put_item(pendingExecution=started["executionArn"], pendingKind="teardown", pendingStart="2026-11-02T08:30:00Z")
    # When the newest execution is read
    newest = newest_execution(read_item(settings(), KEY) or {})
    # Then it is that teardown, running since the noted start
    assert newest == NewestExecution(
        started["executionArn"], "teardown", "RUNNING", datetime(2026, 11, 2, 8, 30, tzinfo=UTC), None
    )


def test_an_unreadable_date_is_no_date(machines: dict[str, str]) -> None:
    put_item(executionArn="arn:x", kind="provision", executionStatus="FAILED", startDate="yesterday", stopDate="")
    newest = newest_execution(read_item(settings(), KEY) or {})
    assert newest is not None and (newest.start_date, newest.stop_date) == (None, None)


@pytest.mark.parametrize(
    ("name", "base", "attempt"),
    [
        ("demo", "demo", 1),
        ("demo-7", "demo", 7),
        ("demo-x", "demo", None),
        ("12", "demo", None),
        ("other", "demo", None),
    ],
)
def test_attempt_of_reads_only_the_request_s_own_names(name: str, base: str, attempt: int | None) -> None:
    assert attempt_of(name, base) == attempt


# --- start dates noted for the status document ---
def test_a_start_notes_step_functions_start_date(machines: dict[str, str]) -> None:
    started = start_provision(settings(), request(), CALLER)
    described = client("stepfunctions").describe_execution(executionArn=started.arn)
    assert started.start_date == described["startDate"]
    assert datetime.fromisoformat(noted_start()) == described["startDate"]


def test_a_replay_of_a_running_start_notes_its_first_start_date_again(machines: dict[str, str]) -> None:
    # Given a provision the API started and noted
    first = start_provision(settings(), request(), CALLER)
    first_noted = noted_start()
    # When the same request comes again (the note is written again: the first answer may have been lost)
    again = start_provision(settings(), request(), "arn:aws:sts::111122223333:assumed-role/other/retry")
    # Then it is the same execution, with the same name and start date, noted as such
    assert (again.arn, again.name, again.replayed, again.start_date) == (first.arn, first.name, True, first.start_date)
    assert noted_start() == first_noted != ""


def test_a_replay_of_an_execution_without_a_known_start_notes_none(machines: dict[str, str]) -> None:
    first = start_provision(settings(), request(), CALLER)
    put_item(pendingExecution=first.arn, pendingKind="provision")
    start_provision(settings(), request(), CALLER)
    assert noted_start() == ""


def test_a_start_that_loses_a_race_to_the_same_request_is_its_winner(machines: dict[str, str]) -> None:
    # Given the first name of the request taken by a running execution of the same request (another caller, and
    # another `previous`: neither makes another request), started between our read and our start
    base = executions.provision_base_name(APP, request().to_json())
    winner_input = {"request": request().to_json(), "caller": "someone-else", "previous": {"revision": 3}}
    with Stubber(client("stepfunctions")) as stub:
        stub_start_attempts(stub, machines["provision"], [base], winner_input)
        # When the request is started
        started = start_provision(settings(), request(), CALLER)
        stub.assert_no_pending_responses()
    # Then the winner is the answer, a replay with its name and start, noted with that start
    winner = execution_arn(machines["provision"], base)
    assert (started.arn, started.name, started.replayed, started.start_date) == (winner, base, True, WINNER_STARTED)
    assert noted_start() == WINNER_STARTED.isoformat()


def test_a_start_that_loses_a_race_to_another_request_names_the_taken_name(machines: dict[str, str]) -> None:
    base = executions.provision_base_name(APP, request().to_json())
    other = {"request": {**request().to_json(), "replicas": 2}}
    with Stubber(client("stepfunctions")) as stub:
        stub_start_attempts(stub, machines["provision"], [base], other)
        with pytest.raises(ExecutionConflict) as conflict:
            start_provision(settings(), request(), CALLER)
    assert (
        str(conflict.value) == f"execution name {base} is taken by an execution with another input; change the request"
    )
    assert conflict.value.execution_arn == execution_arn(machines["provision"], base)


def test_names_taken_by_executions_step_functions_forgot_are_passed_over_up_to_the_last_attempt(
    machines: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given at most 3 attempts, and every name of the request taken by an execution Step Functions no longer
    # describes
    monkeypatch.setattr(executions, "MAX_ATTEMPTS", 3)
    base = executions.provision_base_name(APP, request().to_json())
    with Stubber(client("stepfunctions")) as stub:
        stub_start_attempts(stub, machines["provision"], [base, f"{base}-2", f"{base}-3"], None)
        # When the request is started
        with pytest.raises(ExecutionConflict) as conflict:
            start_provision(settings(), request(), CALLER)
        stub.assert_no_pending_responses()
    # Then the conflict names the app, the attempts and the last name tried
    assert str(conflict.value) == "app blog/fargate/demo-app: 3 attempts of this request already; change the request"
    assert conflict.value.execution_arn == execution_arn(machines["provision"], f"{base}-3")


@pytest.mark.parametrize(
    ("before_asking", "replayed"), [(CLOCK_SKEW, False), (CLOCK_SKEW + timedelta(milliseconds=1), True)]
)
def test_a_start_date_more_than_the_clock_skew_before_asking_is_a_replay(
    machines: dict[str, str], frozen_clock: None, before_asking: timedelta, replayed: bool
) -> None:
    # Given Step Functions answering StartExecution with a start date `before_asking` before we asked (the same
    # name and input while it runs return the running execution)
    base = executions.provision_base_name(APP, request().to_json())
    arn = execution_arn(machines["provision"], base)
    with Stubber(client("stepfunctions")) as stub:
        stub.add_response("start_execution", {"executionArn": arn, "startDate": frozen(NOW - before_asking)})
        started = start_provision(settings(), request(), CALLER)
    # Then only a start further back than the clock skew was not this call's
    assert (started.arn, started.replayed) == (arn, replayed)


# --- replays of finished executions ---
@pytest.mark.parametrize(("ended_ago", "replayed"), [(300, True), (300.001, False)])
def test_a_succeeded_provision_answers_its_replay_until_the_window_ends(
    machines: dict[str, str], frozen_clock: None, monkeypatch: pytest.MonkeyPatch, ended_ago: float, replayed: bool
) -> None:
    # Given a provision that succeeded `ended_ago` seconds ago, and a replay window of 300 s
    monkeypatch.setenv("REPLAY_WINDOW_SECONDS", "300")
    from fargate_app.config import reset_settings

    reset_settings()
    first = start_provision(settings(), request(), CALLER)
    put_item(
        executionArn=first.arn,
        kind="provision",
        executionStatus="SUCCEEDED",
        stopDate=(NOW - timedelta(seconds=ended_ago)).isoformat(),
    )
    # When the same request comes again
    again = start_provision(settings(), request(), CALLER)
    # Then it is that provision within the window, a second attempt after it
    assert (again.arn == first.arn, again.replayed) == (replayed, replayed)


def test_a_succeeded_provision_without_a_recorded_end_answers_its_replay(machines: dict[str, str]) -> None:
    first = start_provision(settings(), request(), CALLER)
    put_item(executionArn=first.arn, kind="provision", executionStatus="SUCCEEDED")
    again = start_provision(settings(), request(), CALLER)
    assert (again.arn, again.status, again.replayed) == (first.arn, "SUCCEEDED", True)


# --- teardown ---
def provisioned(machines: dict[str, str]) -> str:
    started = start_provision(settings(), request(), CALLER)
    finish(started.arn, "SUCCEEDED", provision_result(started.arn), recorded=True)
    return started.arn


def test_a_teardown_is_named_after_the_revision_and_what_it_tears_down(machines: dict[str, str]) -> None:
    # Given a provisioned app (revision 1)
    provision = provisioned(machines)
    item = read_item(settings(), KEY) or {}
    # When it is torn down
    started = start_teardown(settings(), APP, CALLER)
    # Then the name is the app's prefix, "teardown" and the hash of the revision and the teardown's input
    document = {"request": json.loads(item["lastGood"]["requestJson"]), "provision": provision_result(provision)}
    digest = hashlib.sha256(("revision-1" + canonical_json(document)).encode()).hexdigest()[:16]
    assert started.name == f"{APP.name_prefix}-teardown-{digest}"
    assert json.loads(client("stepfunctions").describe_execution(executionArn=started.arn)["input"]) == {
        **document,
        "caller": CALLER,
    }


def test_a_running_teardown_answers_another_delete_with_its_name_and_start(machines: dict[str, str]) -> None:
    provisioned(machines)
    first = start_teardown(settings(), APP, CALLER)
    first_noted = noted_start()
    again = start_teardown(settings(), APP, CALLER)
    assert (again.arn, again.name, again.replayed, again.start_date) == (first.arn, first.name, True, first.start_date)
    assert noted_start() == first_noted != ""


def test_a_failed_teardown_is_followed_by_its_second_attempt(machines: dict[str, str]) -> None:
    provisioned(machines)
    first = start_teardown(settings(), APP, CALLER)
    finish(first.arn, "FAILED", error="ProfileDeleteTimeout", cause="still deleting", recorded=True)
    again = start_teardown(settings(), APP, CALLER)
    assert (again.name, again.replayed) == (f"{first.name}-2", False)


def test_a_teardown_past_its_last_attempt_is_a_conflict_naming_the_app(
    machines: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one attempt per request, and the app's teardown failed at it
    monkeypatch.setattr(executions, "MAX_ATTEMPTS", 1)
    provisioned(machines)
    first = start_teardown(settings(), APP, CALLER)
    finish(first.arn, "FAILED", error="ProfileDeleteTimeout", cause="still deleting", recorded=True)
    # When the app is deleted again
    with pytest.raises(ExecutionConflict) as conflict:
        start_teardown(settings(), APP, CALLER)
    # Then nothing starts: the conflict names the app and the last attempt
    assert str(conflict.value) == "app blog/fargate/demo-app: 1 attempts of this request already; change the request"
    assert conflict.value.execution_arn == first.arn


@pytest.mark.parametrize(("length", "kept"), [(MAX_CAUSE, True), (MAX_CAUSE + 1, False)])
def test_a_closed_execution_s_cause_is_kept_up_to_its_limit(length: int, kept: bool) -> None:
    cause = "x" * length
    error = closed_error({"status": "FAILED", "error": "ImageNotFound", "cause": cause}, "teardown")
    assert error is not None and (error["cause"] == cause, len(error["cause"])) == (kept, min(length, MAX_CAUSE))
