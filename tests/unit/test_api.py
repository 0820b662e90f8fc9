"""The API function, driven by API Gateway REST proxy events from `sam local generate-event` (tests/unit/events).

Step Functions is moto's: it keeps executions RUNNING and emulates StartExecution's name/input idempotency. What
moto cannot do by itself — finish an execution, give it a realistic history — is set on moto's execution object the
way AWS would report it. Races that only AWS can produce go through botocore's Stubber (the real service model).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import (
    ACCOUNT,
    CALLER,
    REGION,
    REQUEST,
    STATUS_URL,
    app_event,
    execution_input,
    executions,
    finish,
    give_history,
    moto_execution,
    post,
    provision_result,
    put,
    record_start,
)
from botocore.stub import Stubber
from project_template import APPS_TABLE_NAME

from fargate_app.api import routes
from fargate_app.api.executions import AppRef, execution_arn, provision_base_name
from fargate_app.aws.clients import client
from fargate_app.config import reset_settings
from fargate_app.errors import InvalidRequest
from fargate_app.models import parse_request

pytestmark = pytest.mark.usefixtures("aws")
# The name of the first execution of REQUEST (the API's naming, docs/design.md §3)
FIRST_NAME = provision_base_name(
    AppRef("blog", "fargate", "demo-app"), parse_request(REQUEST, region=REGION, account=ACCOUNT).to_json()
)


# --- POST /apps ---
def test_post_starts_one_provision_with_the_normalised_request(machines: dict[str, str], call: Any) -> None:
    # Given no execution for the app
    # When the v1 request is posted
    status, body = call(post(REQUEST))
    # Then 202 names the one execution started, with the normalised request as input
    assert status == 202
    [started] = executions(machines["provision"])
    assert body == {
        "executionArn": started["executionArn"],
        "executionName": started["name"],
        "kind": "provision",
        "status": "RUNNING",
        "replayed": False,
        "statusUrl": STATUS_URL,
    }
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", body["executionName"])
    request = execution_input(body["executionArn"])["request"]
    assert request["image"] == "public.ecr.aws/nginx/nginx:stable"
    assert (request["replicas"], request["cpu"], request["memory"], request["platform"]) == (
        1,
        "250m",
        "512Mi",
        "linux/amd64",
    )


def test_a_replay_returns_the_same_execution(machines: dict[str, str], call: Any) -> None:
    # Given a running provision
    _, first = call(post(REQUEST))
    # When the same request is posted again, keys reordered and defaults spelled out (it normalises the same)
    status, again = call(post(json.dumps({**dict(reversed(REQUEST.items())), "replicas": 1}, indent=2)))
    # Then it is the same execution, and only one exists
    assert (status, again["executionArn"], again["replayed"]) == (202, first["executionArn"], True)
    assert len(executions(machines["provision"])) == 1


def test_a_replay_after_success_returns_the_finished_execution(machines: dict[str, str], call: Any) -> None:
    # Given a provision that succeeded
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "SUCCEEDED", provision_result(first["executionArn"]))
    # When it is replayed
    status, again = call(post(REQUEST))
    # Then the finished execution is the answer (200: nothing started)
    assert (status, again["executionArn"], again["status"]) == (200, first["executionArn"], "SUCCEEDED")
    assert len(executions(machines["provision"])) == 1


def test_the_same_request_after_the_replay_window_re_applies_the_app(machines: dict[str, str], call: Any) -> None:
    # Given a provision that succeeded longer ago than the replay window (someone may have deleted its Deployment)
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "SUCCEEDED", provision_result(first["executionArn"]))
    moto_execution(first["executionArn"]).stop_date = datetime.now(UTC) - timedelta(seconds=301)
    # When the same request is posted again
    status, again = call(post(REQUEST))
    # Then it runs again, as the next attempt of the same request (ValidateRequest finds the first as its last good
    # revision in the app's item: the API passes none)
    assert (status, again["executionName"], again["replayed"]) == (202, f"{first['executionName']}-2", False)
    assert "previous" not in execution_input(again["executionArn"])
    assert len(executions(machines["provision"])) == 2


def test_a_teardown_that_succeeded_is_replayed_whenever_it_ended(machines: dict[str, str], call: Any) -> None:
    # Given an app torn down long ago
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "SUCCEEDED", provision_result(first["executionArn"]), recorded=True)
    _, deleted = call(app_event("delete"))
    finish(deleted["executionArn"], "SUCCEEDED", {"status": "SUCCEEDED"}, recorded=True)
    moto_execution(deleted["executionArn"]).stop_date = datetime.now(UTC) - timedelta(days=1)
    # When it is deleted again
    status, again = call(app_event("delete"))
    # Then the teardown that ran is the answer: there is nothing to re-apply
    assert (status, again["executionArn"], again["replayed"]) == (200, deleted["executionArn"], True)


def test_a_failed_provision_is_retried_as_a_new_attempt(machines: dict[str, str], call: Any) -> None:
    # Given a provision that failed
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag")
    # When the same request is posted again
    status, again = call(post(REQUEST))
    # Then a second attempt runs under the next name of the same request
    assert (status, again["executionName"], again["replayed"]) == (202, f"{first['executionName']}-2", False)
    assert len(executions(machines["provision"])) == 2


def test_another_request_while_one_runs_is_a_conflict(machines: dict[str, str], call: Any) -> None:
    # Given a running provision
    _, first = call(post(REQUEST))
    # When another request for the same app is posted
    status, body = call(post({**REQUEST, "replicas": 2}))
    # Then 409 names the running execution and nothing else started
    assert (status, body["error"], body["executionArn"]) == (409, "ExecutionConflict", first["executionArn"])
    assert len(executions(machines["provision"])) == 1


def test_a_running_console_start_is_a_conflict_found_in_the_apps_item(machines: dict[str, str], call: Any) -> None:
    # Given a provision started from the console (the API never noted it: its start record names it in the item)
    console = client("stepfunctions").start_execution(
        stateMachineArn=machines["provision"], name="console-start", input=json.dumps(REQUEST)
    )["executionArn"]
    record_start(console, REQUEST)
    # When a request for the same app is posted
    status, body = call(post({**REQUEST, "replicas": 2}))
    # Then 409 names the console's execution, and nothing started
    assert (status, body["error"], body["executionArn"]) == (409, "ExecutionConflict", console)
    assert len(executions(machines["provision"])) == 1


def test_an_execution_stopped_before_recording_its_end_does_not_hold_the_app(
    machines: dict[str, str], call: Any
) -> None:
    # Given the app's item still saying RUNNING for an execution an administrator stopped
    _, first = call(post(REQUEST))
    record_start(first["executionArn"], REQUEST)
    finish(first["executionArn"], "ABORTED")
    # When another request is posted, then it starts (Step Functions says the recorded one ended)
    status, body = call(post({**REQUEST, "replicas": 2}))
    assert (status, body["replayed"]) == (202, False)


def test_an_execution_step_functions_no_longer_knows_does_not_hold_the_app(machines: dict[str, str], call: Any) -> None:
    # Given the app's item naming an execution Step Functions has forgotten (closed more than 90 days ago)
    forgotten = execution_arn(machines["provision"], "blog-fargate-demo-app-0123abcd-0000000000000000")
    client("dynamodb").put_item(
        TableName=APPS_TABLE_NAME,
        Item={
            "app": {"S": "blog/fargate/demo-app"},
            "kind": {"S": "provision"},
            "executionArn": {"S": forgotten},
            "executionStatus": {"S": "RUNNING"},
        },
    )
    # When a request is posted, then it starts (no 502 for an execution that cannot be described)
    status, body = call(post(REQUEST))
    assert (status, body["replayed"]) == (202, False)


def test_a_request_sent_again_after_others_takes_its_next_free_attempt(machines: dict[str, str], call: Any) -> None:
    # Given request A failed, then request B succeeded (A's first name is taken for 90 days)
    _, a = call(post(REQUEST))
    finish(a["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag", recorded=True)
    _, b = call(post({**REQUEST, "replicas": 2}))
    finish(b["executionArn"], "SUCCEEDED", provision_result(b["executionArn"]), recorded=True)
    # When A is posted again
    status, again = call(post(REQUEST))
    # Then it runs as A's second attempt
    assert (status, again["executionName"], again["replayed"]) == (202, f"{a['executionName']}-2", False)


def test_a_post_or_delete_reads_the_item_and_never_lists_executions(machines: dict[str, str], call: Any) -> None:
    # Given an app with a history of provisions
    for replicas in (1, 2, 3):
        _, started = call(post({**REQUEST, "replicas": replicas}))
        finish(started["executionArn"], "SUCCEEDED", provision_result(started["executionArn"]), recorded=True)

    def calls_of(event: dict[str, Any]) -> tuple[int, list[str]]:
        made: list[str] = []

        def count(model: Any, **_: Any) -> None:
            made.append(model.name)

        for service in ("stepfunctions", "dynamodb"):
            client(service).meta.events.register("before-call", count)
        try:
            status, body = call(event)
        finally:
            for service in ("stepfunctions", "dynamodb"):
                client(service).meta.events.unregister("before-call", count)
        finish(body["executionArn"], "SUCCEEDED", provision_result(body["executionArn"]), recorded=True)
        return status, made

    # When an update is posted, then (once it ran) the app is deleted
    # Then each is one read of the item, the start and its note, whatever the length of the history
    assert calls_of(post({**REQUEST, "replicas": 4})) == (202, ["GetItem", "StartExecution", "UpdateItem"])
    assert calls_of(app_event("delete")) == (202, ["GetItem", "StartExecution", "UpdateItem"])


def test_another_app_is_not_a_conflict(machines: dict[str, str], call: Any) -> None:
    # Given a running provision of demo-app
    call(post(REQUEST))
    # When another app of the same namespace is requested
    status, _ = call(post({**REQUEST, "app": "demo"}))
    # Then it starts too
    assert status == 202
    assert len(executions(machines["provision"])) == 2


def test_the_conflict_names_the_running_execution_and_what_to_do(machines: dict[str, str], call: Any) -> None:
    _, first = call(post(REQUEST))

    _, body = call(post({**REQUEST, "replicas": 2}))

    assert body["message"] == (
        f"app blog/fargate/demo-app has a running provision execution {first['executionName']} for another request; "
        f"wait until it finishes (GET {STATUS_URL}), then send the request again"
    )


def test_each_failed_attempt_is_followed_by_the_next_one(machines: dict[str, str], call: Any) -> None:
    # Given two failed attempts of the same request
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag")
    _, second = call(post(REQUEST))
    finish(second["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag")
    # When it is posted again, then the third attempt runs, and a replay of it is that attempt
    status, third = call(post(REQUEST))
    assert (status, third["executionName"], third["kind"]) == (202, f"{first['executionName']}-3", "provision")
    replay_status, replay = call(post(REQUEST))
    assert (replay_status, replay["executionName"], replay["replayed"]) == (202, third["executionName"], True)


def test_attempts_stop_at_the_limit_with_what_to_do(
    machines: dict[str, str], call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the attempt limit (999 in the code; 2 here) reached by failed attempts
    monkeypatch.setattr("fargate_app.api.executions.MAX_ATTEMPTS", 2)
    for _ in range(2):
        _, started = call(post(REQUEST))
        finish(started["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag")
    # When the same request is posted again
    status, body = call(post(REQUEST))
    # Then nothing starts: 409, naming the last attempt and saying to change the request
    assert body["message"] == "app blog/fargate/demo-app: 2 attempts of this request already; change the request"
    assert (status, body["error"], body["executionArn"]) == (409, "ExecutionConflict", started["executionArn"])
    assert len(executions(machines["provision"])) == 2


def test_a_refusal_by_validate_request_reads_as_every_other_failure_report(machines: dict[str, str], call: Any) -> None:
    # Given a provision that ValidateRequest refused (the Lambda error payload is the execution's cause)
    _, started = call(post(REQUEST))
    payload = {"errorType": "ClusterNotFound", "errorMessage": "EKS cluster blog does not exist", "stackTrace": []}
    finish(started["executionArn"], "FAILED", error="ClusterNotFound", cause=json.dumps(payload))
    # When its status is read
    _, body = call(app_event("get"))
    # Then the cause is the failure report's shape (the Compensate step writes it for every later step)
    assert body["error"]["error"] == "ClusterNotFound"
    assert json.loads(body["error"]["cause"]) == {
        "step": "ValidateRequest",
        "error": "ClusterNotFound",
        "cause": "EKS cluster blog does not exist",
        "compensated": [],
        "leftovers": [],
        "kept": [],
    }


@pytest.mark.parametrize(
    "cause",
    [
        "plain text",
        json.dumps({"errorType": "X"}),
        json.dumps({"errorMessage": "x"}),
        json.dumps(["errorType", "errorMessage"]),
    ],
)
def test_other_causes_are_reported_as_they_are(machines: dict[str, str], call: Any, cause: str) -> None:
    _, started = call(post(REQUEST))
    finish(started["executionArn"], "FAILED", error="States.Runtime", cause=cause)

    _, body = call(app_event("get"))

    assert body["error"] == {"error": "States.Runtime", "cause": cause}


def test_an_execution_ended_without_a_cause_says_how_it_ended(machines: dict[str, str], call: Any) -> None:
    _, started = call(post(REQUEST))
    finish(started["executionArn"], "TIMED_OUT")

    _, body = call(app_event("get"))

    assert body["error"] == {"error": "States.Timeout", "cause": "the execution ended TIMED_OUT"}
    assert (body["status"], body["caller"]) == ("TIMED_OUT", CALLER)


@pytest.mark.parametrize(("same_input", "expected"), [(True, 202), (False, 409)])
def test_a_start_that_loses_a_race_returns_the_winner_only_for_the_same_input(
    machines: dict[str, str], call: Any, same_input: bool, expected: int
) -> None:
    # Given the app's item names no execution, but a call with the same name started one in between (same input, or
    # not)
    normalised = parse_request(REQUEST, region=REGION, account=ACCOUNT).to_json()
    winner_input = {"request": normalised if same_input else {**normalised, "replicas": 2}}
    winner = f"{machines['provision'].replace(':stateMachine:', ':execution:')}:winner"
    with Stubber(client("stepfunctions")) as stub:
        stub.add_client_error("start_execution", "ExecutionAlreadyExists", f"Execution Already Exists: '{winner}'", 400)
        stub.add_response(
            "describe_execution",
            {
                "executionArn": winner,
                "stateMachineArn": machines["provision"],
                "name": "winner",
                "status": "RUNNING",
                "startDate": datetime.now(UTC),
                "input": json.dumps(winner_input),
            },
        )
        # When the request is posted
        status, body = call(post(REQUEST))
        stub.assert_no_pending_responses()
    # Then the winner is the answer for the same input, and a conflict otherwise
    assert (status, body["executionArn"]) == (expected, winner)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"cluster", "app", "namespace", "image"}),
        ({**REQUEST, "app": "Demo_App", "replica": 2}, {"app", "replica"}),
        ({**REQUEST, "replicas": 0, "port": 70000, "cpu": "64"}, {"replicas", "port", "cpu"}),
        ({**REQUEST, "labels": {"app.kubernetes.io/name": "x"}, "platform": "windows/amd64"}, {"labels", "platform"}),
        ({**REQUEST, "image": "docker.io/library/redis:7"}, {"credentialArn"}),
        (
            {**REQUEST, "credentialArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ecr-pullthroughcache/x"},
            {"credentialArn"},
        ),
        ({**REQUEST, "expose": {"ingress": {"scheme": "public"}}}, {"expose.ingress.scheme"}),
        ({**REQUEST, "image": "nginx:::bad", "subnets": ["sub-1"]}, {"image", "subnets"}),
        ([REQUEST], {"request"}),
    ],
)
def test_an_invalid_request_is_400_naming_every_field(
    machines: dict[str, str], call: Any, body: Any, fields: set[str]
) -> None:
    # Given a request that breaks rules of docs/design.md §2
    # When it is posted
    status, answer = call(post(json.dumps(body)))
    # Then 400 names each broken field with its rule, and nothing starts
    assert (status, answer["error"]) == (400, "InvalidRequest")
    assert set(answer["fields"]) == fields
    assert all(rule for rule in answer["fields"].values())
    assert executions(machines["provision"]) == []


def test_the_400_carries_the_problems_as_the_model_made_them() -> None:
    # Given an InvalidRequest whose rule contains "; " and ": " (a message split back into fields would cut it)
    problems = {"labels.team": "must be short; note: 63 characters at most", "app": "is required"}
    # When the API turns it into its answer
    answer = json.loads(routes._invalid_request(InvalidRequest(problems)).body)
    # Then the fields are the problems as they were, and the message is their one-line form
    assert answer == {
        "error": "InvalidRequest",
        "message": "labels.team: must be short; note: 63 characters at most; app: is required",
        "fields": problems,
    }


@pytest.mark.parametrize("raw", ["{not json", "", '{"cluster": "blog",'])
def test_a_body_that_is_not_json_is_400(machines: dict[str, str], call: Any, raw: str) -> None:
    # Given a body that is not a JSON document / When it is posted
    status, answer = call(post(raw))
    # Then 400 blames the body
    assert (status, answer["error"], list(answer["fields"])) == (400, "InvalidRequest", ["body"])


@pytest.mark.parametrize(
    ("body", "base64_flagged", "field", "rule"),
    [
        (None, False, "body", "is empty; send the v1 request as a JSON object"),
        (" \n\t", False, "body", "is empty; send the v1 request as a JSON object"),
        ("eyJ*", True, "body", "is flagged base64-encoded but is not valid base64"),
        ("eyJhcHAiOiAiYSJ9 Cg==", True, "body", "is flagged base64-encoded but is not valid base64"),
        (base64.b64encode(b'{"app": "caf\xe9"}').decode(), True, "body", "is not UTF-8 text"),
        ('{"app": "a", "app": "b"}', False, "app", "is given twice in the body (a JSON object names each field once)"),
    ],
)
def test_a_body_that_cannot_be_read_is_400_saying_why(
    machines: dict[str, str], call: Any, body: str | None, base64_flagged: bool, field: str, rule: str
) -> None:
    # Given a body that is empty, not base64 although flagged so, not UTF-8, or not a plain JSON object
    event = post(REQUEST)
    event["body"], event["isBase64Encoded"] = body, base64_flagged
    # When it is posted
    status, answer = call(event)
    # Then 400 names the field and the rule it breaks, and nothing starts
    assert (status, answer["error"], answer["fields"]) == (400, "InvalidRequest", {field: rule})
    assert executions(machines["provision"]) == []


def test_an_oversized_body_is_413_and_a_body_at_the_limit_is_accepted(machines: dict[str, str], call: Any) -> None:
    # Given a valid request padded with whitespace to exactly 64 KiB, and one byte more
    at_limit = json.dumps(REQUEST).encode().ljust(64 * 1024)
    # When both are posted
    over_status, over = call(post(at_limit + b" "))
    at_status, _ = call(post(at_limit))
    # Then only the oversized one is refused, with a message that gives the limit
    assert (over_status, over["error"]) == (413, "RequestTooLarge")
    assert "65536" in over["message"]
    assert at_status == 202


def test_an_unknown_route_is_a_json_404(machines: dict[str, str], call: Any) -> None:
    status, body = call({**app_event("get"), "path": "/apps/blog", "httpMethod": "GET"})
    assert (status, body["error"]) == (404, "NotFound")


# --- GET /apps/{cluster}/{namespace}/{app} ---
def test_get_an_unknown_app_is_404(machines: dict[str, str], call: Any) -> None:
    status, body = call(app_event("get"))
    assert (status, body["error"]) == (404, "AppNotFound")


def test_get_invalid_path_parameters_is_400_naming_them(machines: dict[str, str], call: Any) -> None:
    status, body = call(app_event("get", cluster="-blog", namespace="Fargate_NS"))
    assert (status, set(body["fields"])) == (400, {"cluster", "namespace"})


def test_get_a_running_provision_reports_the_state_it_is_in(machines: dict[str, str], call: Any) -> None:
    # Given a provision waiting for its Fargate profile
    _, started = call(post(REQUEST))
    give_history(started["executionArn"], ["ValidateRequest", "EnsurePodExecutionRole", "CheckFargateProfile"])
    # When its status is read
    status, body = call(app_event("get"))
    # Then it is RUNNING in that state, without result or error
    assert status == 200
    assert {k: body[k] for k in ("status", "kind", "executionArn", "currentState", "result", "error")} == {
        "status": "RUNNING",
        "kind": "provision",
        "executionArn": started["executionArn"],
        "currentState": "CheckFargateProfile",
        "result": None,
        "error": None,
    }


def test_get_a_succeeded_provision_returns_its_result(machines: dict[str, str], call: Any) -> None:
    # Given a provision that succeeded
    _, started = call(post(REQUEST))
    result = provision_result(started["executionArn"])
    give_history(started["executionArn"], ["ValidateRequest", "CheckRollout"], end="SUCCEEDED")
    finish(started["executionArn"], "SUCCEEDED", result)
    # When its status is read
    status, body = call(app_event("get"))
    # Then the result is the execution's output
    assert (status, body["status"], body["currentState"], body["result"]) == (200, "SUCCEEDED", "AppRunning", result)
    assert body["error"] is None and body["stopDate"]


def test_get_a_failed_provision_returns_its_error(machines: dict[str, str], call: Any) -> None:
    # Given a provision that failed on a missing image
    _, started = call(post(REQUEST))
    cause = "image public.ecr.aws/nginx/nginx:stable not found in the cache ecr-public"
    give_history(started["executionArn"], ["ValidateRequest", "WarmImageCache"], end="FAILED")
    finish(started["executionArn"], "FAILED", error="ImageNotFound", cause=cause)
    # When its status is read
    status, body = call(app_event("get"))
    # Then the error and the state it ended in are reported
    assert (status, body["status"], body["currentState"]) == (200, "FAILED", "ProvisionFailed")
    assert body["error"] == {"error": "ImageNotFound", "cause": cause}
    assert body["result"] is None


def test_get_reads_history_newest_first_without_execution_data(machines: dict[str, str], call: Any) -> None:
    # Given a running provision (the API noted it in the inventory; its history comes through the stub below)
    _, started = call(post(REQUEST))
    sfn = client("stepfunctions")
    with Stubber(sfn) as stub:
        stub.add_response(
            "get_execution_history",
            {
                "events": [
                    {
                        "id": 7,
                        "type": "TaskStateEntered",
                        "timestamp": datetime.now(UTC),
                        "stateEnteredEventDetails": {"name": "ApplyApp"},
                    }
                ]
            },
            {
                "executionArn": started["executionArn"],
                "reverseOrder": True,
                "includeExecutionData": False,
                "maxResults": 1000,
            },
        )
        # When its status is read
        status, body = call(app_event("get"))
        stub.assert_no_pending_responses()
    # Then the newest state entered is reported
    assert (status, body["currentState"]) == (200, "ApplyApp")


# --- DELETE /apps/{cluster}/{namespace}/{app} ---
def test_delete_a_never_provisioned_app_is_404(machines: dict[str, str], call: Any) -> None:
    status, body = call(app_event("delete"))
    assert (status, body["error"]) == (404, "AppNotFound")
    assert executions(machines["teardown"]) == []


def test_delete_while_provisioning_is_a_conflict(machines: dict[str, str], call: Any) -> None:
    _, started = call(post(REQUEST))
    status, body = call(app_event("delete"))
    assert (status, body["executionArn"]) == (409, started["executionArn"])
    assert body["message"] == (
        f"app blog/fargate/demo-app is being provisioned by {started['executionName']}; wait until it finishes "
        f"(GET {STATUS_URL}), then delete it"
    )
    assert executions(machines["teardown"]) == []


def test_delete_a_never_provisioned_app_says_so(machines: dict[str, str], call: Any) -> None:
    _, body = call(app_event("delete"))
    assert body["message"] == "app blog/fargate/demo-app was never provisioned: nothing to tear down"


def test_delete_after_only_failed_provisions_tears_down_the_latest(machines: dict[str, str], call: Any) -> None:
    # Given two provisions of the app that both failed (the second for another request)
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "FAILED", error="ImageNotFound", cause="no such tag", recorded=True)
    _, second = call(post({**REQUEST, "replicas": 2}))
    finish(second["executionArn"], "FAILED", error="RolloutFailed", cause="pods never became ready", recorded=True)
    # When the app is deleted
    status, body = call(app_event("delete"))
    # Then the teardown works from the latest one's request (its output: none)
    teardown_input = execution_input(body["executionArn"])
    assert status == 202
    assert (teardown_input["request"]["replicas"], teardown_input["provision"]) == (2, None)


def test_delete_of_an_app_whose_provisions_never_recorded_themselves_is_404(
    machines: dict[str, str], call: Any
) -> None:
    # Given an app whose only provision ValidateRequest refused (it never recorded itself: nothing was created)
    _, refused = call(post(REQUEST))
    finish(refused["executionArn"], "FAILED", error="ClusterNotFound", cause="EKS cluster blog does not exist")
    # When the app is deleted through the API
    status, body = call(app_event("delete"))
    # Then there is nothing to tear down, and no teardown starts
    assert (status, body["error"]) == (404, "AppNotFound")
    assert executions(machines["teardown"]) == []


def test_an_execution_arn_is_its_state_machines_with_the_name() -> None:
    machine = "arn:aws:states:us-west-2:111122223333:stateMachine:fargate-app-provision"
    assert (
        execution_arn(machine, "blog-x-1")
        == "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:blog-x-1"
    )


def test_delete_tears_down_what_the_provision_built_once(machines: dict[str, str], call: Any) -> None:
    # Given a provision that succeeded
    _, started = call(post(REQUEST))
    result = provision_result(started["executionArn"])
    finish(started["executionArn"], "SUCCEEDED", result, recorded=True)
    # When the app is deleted, twice
    status, body = call(app_event("delete"))
    again_status, again = call(app_event("delete"))
    # Then one teardown runs with the provision's request and result, and GET now reports it
    assert (status, body["kind"], body["statusUrl"]) == (202, "teardown", STATUS_URL)
    assert "-teardown-" in body["executionName"]
    assert (again_status, again["executionArn"]) == (202, body["executionArn"])
    [teardown] = executions(machines["teardown"])
    assert execution_input(teardown["executionArn"]) == {
        "request": result["request"],
        "provision": result,
        "caller": CALLER,
    }
    _, state = call(app_event("get"))
    assert (state["kind"], state["executionArn"]) == ("teardown", body["executionArn"])


def test_delete_after_a_failed_update_tears_down_the_last_good_provision(machines: dict[str, str], call: Any) -> None:
    # Given a provision that succeeded, then an update that failed
    _, good = call(post(REQUEST))
    finish(good["executionArn"], "SUCCEEDED", provision_result(good["executionArn"]), recorded=True)
    _, bad = call(post({**REQUEST, "replicas": 3}))
    finish(bad["executionArn"], "FAILED", error="RolloutFailed", cause="pods never became ready", recorded=True)
    # When the app is deleted
    status, body = call(app_event("delete"))
    # Then the teardown works from the succeeded provision's request and result
    assert status == 202
    teardown_input = execution_input(body["executionArn"])
    assert teardown_input["request"]["replicas"] == 1
    assert teardown_input["provision"] == provision_result(good["executionArn"])


def test_post_after_teardown_provisions_again(machines: dict[str, str], call: Any) -> None:
    # Given an app provisioned and torn down
    _, first = call(post(REQUEST))
    finish(first["executionArn"], "SUCCEEDED", provision_result(first["executionArn"]), recorded=True)
    _, teardown = call(app_event("delete"))
    finish(teardown["executionArn"], "SUCCEEDED", {"teardown": {"status": "SUCCEEDED", "leftovers": []}}, recorded=True)
    # When the same request is posted again
    status, again = call(post(REQUEST))
    # Then a new provision runs: the old success is no longer the app's state
    assert (status, again["replayed"]) == (202, False)
    assert again["executionArn"] != first["executionArn"]


# --- failures of Step Functions or of the function itself ---
@pytest.mark.parametrize(
    ("code", "expected", "error"),
    [("ThrottlingException", 503, "AwsThrottled"), ("AccessDeniedException", 502, "AccessDenied")],
)
def test_step_functions_errors_are_named_without_internals(
    machines: dict[str, str], call: Any, code: str, expected: int, error: str
) -> None:
    with Stubber(client("stepfunctions")) as stub:
        stub.add_client_error("start_execution", code, "not now", 400)
        status, body = call(post(REQUEST))
    assert (status, body["error"]) == (expected, error)
    assert "Traceback" not in json.dumps(body)


def test_a_throttled_call_is_503_with_when_to_retry(
    machines: dict[str, str], handler: Callable[[str], Any], lambda_context: Any
) -> None:
    with Stubber(client("stepfunctions")) as stub:
        stub.add_client_error("start_execution", "ThrottlingException", "Rate exceeded", 400)
        response = handler("api").lambda_handler(post(REQUEST), lambda_context)
    assert (response["statusCode"], response["multiValueHeaders"]["Retry-After"]) == (503, ["5"])
    assert json.loads(response["body"]) == {
        "error": "AwsThrottled",
        "message": f"start provision execution {FIRST_NAME}: AWS answered ThrottlingException after retries; the "
        "step will be retried",
    }


def test_a_refusal_by_step_functions_is_502_with_its_words(machines: dict[str, str], call: Any) -> None:
    with Stubber(client("stepfunctions")) as stub:
        stub.add_client_error("start_execution", "StateMachineDoesNotExist", "State Machine Does Not Exist", 400)
        status, body = call(post(REQUEST))
    assert (status, body) == (
        502,
        {
            "error": "PermanentError",
            "message": f"start provision execution {FIRST_NAME}: StateMachineDoesNotExist: State Machine Does Not "
            "Exist",
        },
    )


def test_an_unexpected_error_is_500_without_details(
    machines: dict[str, str], call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("secret-token-abc in /var/task/fargate_app/api/executions.py")

    monkeypatch.setattr(routes, "start_provision", explode)
    status, body = call(post(REQUEST))
    request_id = post(REQUEST)["requestContext"]["requestId"]
    assert (status, body) == (
        500,
        {"error": "InternalError", "message": f"unexpected error; the logs of request {request_id} say why"},
    )
    assert "secret-token-abc" not in json.dumps(body) and "executions.py" not in json.dumps(body)


def test_a_missing_state_machine_setting_is_a_named_500(call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISION_STATE_MACHINE_ARN", raising=False)
    monkeypatch.delenv("TEARDOWN_STATE_MACHINE_ARN", raising=False)
    reset_settings()
    status, body = call(post(REQUEST))
    assert (status, body["error"]) == (500, "ApiMisconfigured")
    assert "PROVISION_STATE_MACHINE_ARN" in body["message"]


def test_a_malformed_setting_is_a_named_500_and_a_fixed_one_is_read_again(
    machines: dict[str, str], call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the API function's environment with a state machine ARN that is not one
    monkeypatch.setenv("PROVISION_STATE_MACHINE_ARN", "arn:aws:lambda:us-west-2:111122223333:function:oops")
    reset_settings()
    status, body = call(post(REQUEST))
    # Then the answer names the variable and its rule, and nothing starts
    assert (status, body["error"]) == (500, "ApiMisconfigured")
    assert "PROVISION_STATE_MACHINE_ARN" in body["message"] and "pattern" in body["message"]
    assert executions(machines["provision"]) == []
    # When the environment is fixed, Then the next call reads it (a failure is not cached)
    monkeypatch.setenv("PROVISION_STATE_MACHINE_ARN", machines["provision"])
    assert call(post(REQUEST))[0] == 202


# --- PUT, protected namespaces and the caller (who may deploy where) ----------------------------------------------------
def test_put_on_the_apps_path_starts_the_same_execution_as_post(machines: dict[str, str], call: Any) -> None:
    # Given the request without the names the path carries
    body = {k: v for k, v in REQUEST.items() if k not in ("cluster", "namespace", "app")}
    # When it is PUT on the app's path, then POSTed in full
    put_status, by_put = call(put(body))
    post_status, by_post = call(post(REQUEST))
    # Then one provision runs for both: the same request, so the POST is its replay
    assert (put_status, post_status) == (202, 202)
    assert by_post["executionArn"] == by_put["executionArn"] and by_post["replayed"] is True
    assert len(executions(machines["provision"])) == 1
    assert execution_input(by_put["executionArn"])["request"]["app"] == "demo-app"


@pytest.mark.parametrize("field", ["cluster", "namespace", "app"])
def test_put_with_a_body_naming_another_app_than_the_path_is_400(
    machines: dict[str, str], call: Any, field: str
) -> None:
    # When the body's name differs from the path's
    status, body = call(put({**REQUEST, field: "other"}))
    # Then 400 names the field and the rule, and nothing starts
    assert (status, body["error"]) == (400, "InvalidRequest")
    assert body["fields"] == {field: f"must equal the path's {field} ({REQUEST[field]}) or be left out"}
    assert executions(machines["provision"]) == []


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_a_protected_namespace_is_refused_by_put_and_post(machines: dict[str, str], call: Any, namespace: str) -> None:
    # When a request names one of Kubernetes' own namespaces, by PUT or POST
    for event in (
        put({**REQUEST, "namespace": namespace}, namespace=namespace),
        post({**REQUEST, "namespace": namespace}),
    ):
        status, body = call(event)
        # Then 400 names namespace and the rule, and nothing starts
        assert (status, body["error"]) == (400, "InvalidRequest")
        assert body["fields"]["namespace"].startswith(f"{namespace} is a protected namespace")
    assert executions(machines["provision"]) == []


def test_the_operator_lists_the_protected_namespaces(
    machines: dict[str, str], call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack whose ProtectedNamespaces are a pattern and default
    monkeypatch.setenv("PROTECTED_NAMESPACES", "platform-*,default")
    reset_settings()
    try:
        refused = [call(post({**REQUEST, "namespace": ns}))[0] for ns in ("platform-ops", "default")]
        accepted = [call(post({**REQUEST, "namespace": ns}))[0] for ns in ("kube-system", "platformops")]
    finally:
        reset_settings()
    # Then what matches is refused, and the rest (kube-system included: the operator replaced the list) is accepted
    assert (refused, accepted) == ([400, 400], [202, 202])


def test_default_is_allowed_unless_listed(machines: dict[str, str], call: Any) -> None:
    assert call(post({**REQUEST, "namespace": "default"}))[0] == 202


def test_the_caller_comes_from_api_gateways_identity_never_from_the_body(machines: dict[str, str], call: Any) -> None:
    # When a request claims a caller in its body
    status, body = call(post({**REQUEST, "caller": "arn:aws:iam::111122223333:role/admin"}))
    # Then it is an unknown field
    assert (status, set(body["fields"])) == (400, {"caller"})
    # When it is sent without one
    status, body = call(post(REQUEST))
    # Then the execution records the principal API Gateway authorized, and GET reports it
    assert execution_input(body["executionArn"])["caller"] == CALLER
    assert call(app_event("get"))[1]["caller"] == CALLER


def test_a_call_without_an_iam_identity_is_refused_as_a_misconfigured_route(
    machines: dict[str, str], call: Any
) -> None:
    # Given an event of a route that lost its AWS_IAM authorization (no identity)
    event = post(REQUEST)
    event["requestContext"]["identity"]["userArn"] = None
    # Then nothing starts, and the operator is told why
    status, body = call(event)
    assert (status, body["error"]) == (500, "ApiMisconfigured")
    assert body["message"] == (
        "the request carries no IAM caller identity: every route of this API must use AWS_IAM authorization"
    )
    assert executions(machines["provision"]) == []


def test_the_api_cold_start_builds_no_step_model() -> None:
    # Given a fresh interpreter, When it imports the API's routes (what the Api function's cold start imports)
    code = (
        "import json\n"
        "from fargate_app.api import routes\n"
        "from fargate_app.models import ProvisionRequest, StepModel\n"
        "def loaded(model): return [model, *(m for sub in model.__subclasses__() for m in loaded(sub))]\n"
        "print(json.dumps({'request': ProvisionRequest.__pydantic_complete__,\n"
        "  'built': sorted(m.__name__ for m in loaded(StepModel) if m.__pydantic_complete__),\n"
        "  'steps': len(loaded(StepModel))}))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported = json.loads(answer.stdout)
    # Then the request model (POST and PUT validate with it) is ready, and no step's input or result model was built:
    # each is built by the step that first validates one
    assert imported["request"] is True
    assert imported["steps"] > 5 and imported["built"] == []
