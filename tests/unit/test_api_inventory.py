"""The API's reads of the app inventory: GET /apps/{…} from the app's item (one call, two while its execution runs,
whatever the length of its history) and GET /apps, one Query per page, newest first.

The items are written as the state machines' Record… states write them (tests/e2e/test_workflows.py checks those
writes on the real ASL); Step Functions is moto's, with executions finished or given a history as AWS reports them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import CACHED, CALLER, REQUEST, app_event, executions, finish, give_history, moto_execution, post
from botocore.stub import Stubber
from project_template import APPS_TABLE_NAME

from fargate_app.api.executions import AppRef
from fargate_app.aws.clients import client

pytestmark = pytest.mark.usefixtures("aws")


def record(
    cluster: str = "blog",
    namespace: str = "fargate",
    app: str = "demo-app",
    *,
    state: str = "RUNNING",
    status: str = "SUCCEEDED",
    execution: str = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:demo-1",
    updated: str = "2026-12-01T10:00:00.000Z",
    revision: int = 1,
    **extra: dict[str, Any],
) -> None:
    """An item as RecordProvisionStart then RecordProvisionSucceeded leave it (typed attribute values)."""
    item = {
        "app": {"S": f"{cluster}/{namespace}/{app}"},
        "clusterName": {"S": cluster},
        "namespace": {"S": namespace},
        "appName": {"S": app},
        "clusterNamespace": {"S": f"{cluster}/{namespace}"},
        "listing": {"S": "apps"},
        "appState": {"S": state},
        "revision": {"N": str(revision)},
        "requestedImage": {"S": "public.ecr.aws/nginx/nginx:stable"},
        "kind": {"S": "provision"},
        "executionStatus": {"S": status},
        "caller": {"S": CALLER},
        "executionArn": {"S": execution},
        "startDate": {"S": "2026-12-01T09:59:00.000Z"},
        "updatedAt": {"S": updated},
        "version": {"N": "2"},
        **extra,
    }
    client("dynamodb").put_item(TableName=APPS_TABLE_NAME, Item=item)


@pytest.fixture
def aws_calls() -> Iterator[list[str]]:
    """Every DynamoDB and Step Functions call the API makes, by operation name."""
    made: list[str] = []

    def count(model: Any, **_: Any) -> None:
        made.append(model.name)

    clients = [client("dynamodb"), client("stepfunctions")]
    for each in clients:
        each.meta.events.register("before-call", count)
    yield made
    for each in clients:
        each.meta.events.unregister("before-call", count)


def many_executions(machines: dict[str, str], count: int) -> None:
    """Earlier provisions of the app (a long history the listing would have to page through)."""
    sfn = client("stepfunctions")
    for n in range(count):
        sfn.start_execution(stateMachineArn=machines["provision"], name=f"blog-fargate-demo-app-old-{n}", input="{}")


def list_event(**query: str) -> dict[str, Any]:
    event = app_event("get")
    event.update(resource="/apps", path="/apps", pathParameters=None, queryStringParameters=query or None)
    event["requestContext"].update(resourcePath="/apps", path="/v1/apps")
    return event


# --- GET /apps/{cluster}/{namespace}/{app} ---
def test_a_finished_app_is_read_from_its_item_in_one_call(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given a running app whose provision succeeded, among 60 executions of its history
    many_executions(machines, 60)
    result = {"status": "SUCCEEDED", "image": {"cached": CACHED}}
    record(resultJson={"S": json.dumps(result)}, cachedImage={"S": CACHED}, stopDate={"S": "2026-12-01T10:00:00Z"})
    aws_calls.clear()
    # When its status is read
    status, body = call(app_event("get"))
    # Then the item answers alone: one GetItem, no listing of the history
    assert aws_calls == ["GetItem"]
    assert status == 200
    assert {k: body[k] for k in ("status", "kind", "state", "revision", "result", "error", "currentState")} == {
        "status": "SUCCEEDED",
        "kind": "provision",
        "state": "RUNNING",
        "revision": 1,
        "result": result,
        "error": None,
        "currentState": None,
    }
    assert body["image"] == {"requested": "public.ecr.aws/nginx/nginx:stable", "cached": CACHED}
    assert (body["cluster"], body["namespace"], body["app"]) == ("blog", "fargate", "demo-app")
    assert body["startDate"] == "2026-12-01T09:59:00+00:00" and body["executionName"] == "demo-1"


def test_a_running_app_adds_one_history_read_for_its_current_state(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given an update in progress, recorded by its start, waiting for its rollout
    _, started = call(post(REQUEST))
    give_history(started["executionArn"], ["ValidateRequest", "RecordProvisionStart", "ApplyApp", "CheckRollout"])
    record(state="UPDATING", status="RUNNING", execution=started["executionArn"], revision=2)
    aws_calls.clear()
    # When its status is read
    status, body = call(app_event("get"))
    # Then the item and the newest page of the history answer: two calls
    assert aws_calls == ["GetItem", "GetExecutionHistory"]
    assert (status, body["status"], body["state"], body["currentState"]) == (200, "RUNNING", "UPDATING", "CheckRollout")


def test_an_execution_step_functions_no_longer_knows_is_reported_as_the_item_says(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given the app's item saying RUNNING for an execution Step Functions has forgotten (its 90 days are over)
    forgotten = machines["provision"].replace(":stateMachine:", ":execution:") + ":demo-forgotten"
    record(state="UPDATING", status="RUNNING", execution=forgotten, revision=2)
    aws_calls.clear()
    # When its status is read
    status, body = call(app_event("get"))
    # Then it is what the item says, not a 502: nothing more is known
    assert aws_calls == ["GetItem", "GetExecutionHistory"]
    assert (status, body["status"], body["state"], body["executionArn"]) == (200, "RUNNING", "UPDATING", forgotten)
    assert body["currentState"] is None


def test_an_execution_that_ended_without_recording_it_is_reported_as_it_ended(
    machines: dict[str, str], call: Any
) -> None:
    # Given an item still naming its provision as running, which the history shows aborted by hand
    _, started = call(post(REQUEST))
    give_history(started["executionArn"], ["ValidateRequest", "RecordProvisionStart", "WarmImageCache"], end="FAILED")
    finish(started["executionArn"], "FAILED", error="ImageNotFound", cause="image not found")
    record(state="PROVISIONING", status="RUNNING", execution=started["executionArn"])
    # When its status is read
    _, body = call(app_event("get"))
    # Then the end the history records is the answer
    assert (body["status"], body["currentState"]) == ("FAILED", "ProvisionFailed")
    assert body["error"]["error"] == "ImageNotFound"


def test_an_execution_that_records_its_end_while_the_status_is_read_is_reported_as_recorded(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given a teardown running when its item is read, which records its end (TORN_DOWN) and ends before the history is
    # read: the race a client polling the status of a teardown meets at its last state
    _, started = call(post(REQUEST))
    arn = started["executionArn"]
    give_history(arn, ["ReadTeardownInput", "DeleteApp", "CheckPodsGone", "RecordTeardownSucceeded"], end="SUCCEEDED")
    record(state="TEARING_DOWN", status="RUNNING", execution=arn, kind={"S": "teardown"})
    report = {"leftovers": [], "kept": []}

    def teardown_ends(model: Any, **_: Any) -> None:
        if model.name == "GetExecutionHistory":
            record(state="TORN_DOWN", execution=arn, kind={"S": "teardown"}, resultJson={"S": json.dumps(report)})
            finish(arn, "SUCCEEDED", output=report)

    sfn = client("stepfunctions")
    sfn.meta.events.register("before-call", teardown_ends)
    aws_calls.clear()
    try:
        # When its status is read
        _, body = call(app_event("get"))
    finally:
        sfn.meta.events.unregister("before-call", teardown_ends)
    # Then the answer is the item's record of the end, as the next read gives it: the app's state with its status
    assert (body["status"], body["kind"], body["state"], body["result"]) == (
        "SUCCEEDED",
        "teardown",
        "TORN_DOWN",
        report,
    )
    _, again = call(app_event("get"))
    assert again == body
    # read again once the history said it ended (PutItem: the end the execution recorded)
    assert [c for c in aws_calls if c != "PutItem"][:3] == ["GetItem", "GetExecutionHistory", "GetItem"]


def test_a_failed_update_rolled_back_keeps_the_app_running_with_the_updates_error(
    machines: dict[str, str], call: Any
) -> None:
    # Given an update whose rollout failed and whose last good revision was applied again
    cause = json.dumps({"step": "CheckRollout", "error": "RolloutFailed", "rolledBackTo": "demo-1"})
    record(status="FAILED", revision=2, failure={"M": {"error": {"S": "RolloutFailed"}, "cause": {"S": cause}}})
    # When its status is read
    _, body = call(app_event("get"))
    # Then the execution failed with the update's error, and the app still runs (state RUNNING)
    assert (body["status"], body["state"], body["revision"]) == ("FAILED", "RUNNING", 2)
    assert body["error"] == {"error": "RolloutFailed", "cause": cause}


def test_an_app_without_an_item_is_not_found_whatever_its_executions(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given a console start the inventory has no item for (ValidateRequest refused it before its start record)
    name = f"{AppRef('blog', 'fargate', 'demo-app').name_prefix}-console"
    arn = client("stepfunctions").start_execution(stateMachineArn=machines["provision"], name=name, input="{}")
    finish(arn["executionArn"], "FAILED", error="InvalidRequest", cause="image: is required")
    aws_calls.clear()
    # When its status is read, then the app is not found, from its item alone: executions are never listed
    status, body = call(app_event("get"))
    assert (status, body["error"]) == (404, "AppNotFound")
    assert aws_calls == ["GetItem"]


def test_a_start_not_recorded_yet_is_the_apps_status_not_the_older_record(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given a running app (its item) and an update the API has just started, still in ValidateRequest
    record()
    _, started = call(post({**REQUEST, "replicas": 2}))
    give_history(started["executionArn"], ["ValidateRequest"])
    aws_calls.clear()
    # When its status is read
    status, body = call(app_event("get"))
    # Then the update is the answer (two calls), with who started it; the record's revision is still the last one
    assert status == 200 and aws_calls == ["GetItem", "GetExecutionHistory"]
    assert (body["status"], body["executionArn"], body["currentState"]) == (
        "RUNNING",
        started["executionArn"],
        "ValidateRequest",
    )
    assert (body["caller"], body["state"], body["revision"]) == (CALLER, "RUNNING", 1)


def test_a_start_refused_before_it_recorded_itself_reports_the_refusal(machines: dict[str, str], call: Any) -> None:
    # Given an update the API started that ValidateRequest refused (it never recorded itself)
    record()
    _, started = call(post({**REQUEST, "replicas": 2}))
    payload = {"errorType": "ClusterNotActive", "errorMessage": "cluster blog is UPDATING"}
    give_history(started["executionArn"], ["ValidateRequest"], end="FAILED")
    finish(started["executionArn"], "FAILED", error="ClusterNotActive", cause=json.dumps(payload))
    # When its status is read, then the refusal is reported in the failure report's shape
    _, body = call(app_event("get"))
    assert (body["status"], body["executionArn"]) == ("FAILED", started["executionArn"])
    assert json.loads(body["error"]["cause"])["step"] == "ValidateRequest"


def test_a_start_the_inventory_cannot_note_is_503_and_its_retry_notes_it(machines: dict[str, str], call: Any) -> None:
    # Given DynamoDB throttling the API's note of the execution it starts
    dynamodb = client("dynamodb")
    with Stubber(dynamodb) as stub:
        stub.add_response("get_item", {})
        stub.add_client_error("update_item", "ProvisionedThroughputExceededException", http_status_code=400)
        # When the request is sent, then the answer is retryable, though the execution runs
        status, body = call(post(REQUEST))
    assert (status, body["error"], len(executions(machines["provision"]))) == (503, "AwsThrottled", 1)
    # When it is sent again (once the first answer's second has passed), then it is a replay of the running execution
    # (StartExecution of the same name and input returns it, start date included, as AWS does while it runs), noted
    # this time
    [running] = executions(machines["provision"])
    moto_execution(running["executionArn"]).start_date = datetime.now(UTC) - timedelta(seconds=5)
    status, again = call(post(REQUEST))
    assert (status, again["executionArn"], again["replayed"]) == (202, running["executionArn"], True)
    item = dynamodb.get_item(TableName=APPS_TABLE_NAME, Key={"app": {"S": "blog/fargate/demo-app"}})["Item"]
    assert item["pendingExecution"]["S"] == again["executionArn"]


# --- GET /apps ---
def test_apps_are_listed_newest_first_one_query_a_page(
    machines: dict[str, str], call: Any, aws_calls: list[str]
) -> None:
    # Given five apps in two clusters, updated one after the other
    for n, (cluster, namespace) in enumerate(
        [("blog", "a"), ("blog", "b"), ("shop", "a"), ("blog", "a"), ("blog", "b")]
    ):
        record(cluster, namespace, f"app-{n}", updated=f"2026-12-01T10:0{n}:00.000Z")
    aws_calls.clear()
    # When every app is listed two at a time
    pages, token = [], None
    while True:
        status, page = call(list_event(limit="2", **({"nextToken": token} if token else {})))
        assert status == 200, page
        pages.append([a["app"] for a in page["apps"]])
        token = page["nextToken"]
        if token is None:
            break
    # Then they come newest first, two a page, each page one Query
    assert [name for page in pages for name in page] == ["app-4", "app-3", "app-2", "app-1", "app-0"]
    assert all(len(page) <= 2 for page in pages) and aws_calls == ["Query"] * len(pages)
    # and a cluster's, or a namespace's, are listed alone
    _, blog = call(list_event(cluster="blog"))
    assert [a["app"] for a in blog["apps"]] == ["app-4", "app-3", "app-1", "app-0"]
    _, team = call(list_event(cluster="blog", namespace="a"))
    assert [a["app"] for a in team["apps"]] == ["app-3", "app-0"] and team["nextToken"] is None
    assert set(team["apps"][0]) == {
        "cluster",
        "namespace",
        "app",
        "state",
        "revision",
        "image",
        "updatedAt",
        "executionArn",
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"namespace": "a"}, "namespace"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cluster": "-blog"}, "cluster"),
        ({"nextToken": "not-a-token"}, "nextToken"),
        ({"nextToken": base64.urlsafe_b64encode(b'{"app": {"S": "x"}}').decode()}, "nextToken"),
        ({"sort": "oldest"}, "sort"),
    ],
)
def test_a_bad_listing_query_is_400_naming_the_parameter(
    machines: dict[str, str], call: Any, aws_calls: list[str], query: dict[str, str], field: str
) -> None:
    status, body = call(list_event(**query))
    assert (status, body["error"], list(body["fields"])) == (400, "InvalidRequest", [field])
    assert aws_calls == []
