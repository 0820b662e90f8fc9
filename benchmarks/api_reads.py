"""Figure 9: AWS calls of the API, against a long history and a large inventory.

The API function's handler in process, on moto (Step Functions, DynamoDB), with the stack's table
(template.yaml AppsTable). The app has 5,000 past provision executions, named as the API names them. GET
/apps/{cluster}/{namespace}/{app} is counted for a finished app (its item alone) and for a running one (its item and
the newest page of its execution's history); a DELETE of the finished app and a PUT of an update of it (each: its
item, the start, the note of the start), which before the inventory listed both state machines' executions
(ListExecutions pages of 1,000, up to 20,000 executions) on every call. GET /apps then lists 1,000 apps 100 a page.
Calls are counted on botocore's ``before-call`` event of the clients the handler uses, so every call is one the API
makes (pagination included).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.report import Figure, Row

HISTORY = 5_000
APPS = 1_000
PAGE = 100
CALLS_GOAL = 2
START_CALLS_GOAL = 3  # GetItem, StartExecution, UpdateItem (the note)
QUERIES_PER_PAGE_GOAL = 1
ACCOUNT, REGION = "111122223333", "us-west-2"
TABLE = "fargate-app-provisioner-apps"
CALLER = "arn:aws:sts::111122223333:assumed-role/platform-admin/team-a"
REQUEST = {"cluster": "blog", "image": "public.ecr.aws/nginx/nginx:stable"}


@contextmanager
def _api() -> Iterator[tuple[Callable[[str, str, dict[str, str] | None], dict[str, Any]], list[str], dict[str, str]]]:
    """The handler on moto with the stack's table and state machines; (call, calls made, state machine ARNs)."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "ACCOUNT_ID": ACCOUNT,
            "MOTO_ACCOUNT_ID": ACCOUNT,
            "APPS_TABLE_NAME": TABLE,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        import boto3

        from benchmarks.sandbox_runs import ROOT
        from fargate_sandbox.template_model import read_template

        template = read_template(ROOT / "template.yaml")
        table = template["Resources"]["AppsTable"]["Properties"]
        keys = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")
        boto3.client("dynamodb").create_table(TableName=TABLE, **{k: table[k] for k in keys})
        sfn = boto3.client("stepfunctions")
        asl = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
        arns = {
            kind: sfn.create_state_machine(
                name=f"fargate-app-{kind}", definition=asl, roleArn=f"arn:aws:iam::{ACCOUNT}:role/states"
            )["stateMachineArn"]
            for kind in ("provision", "teardown")
        }
        os.environ["PROVISION_STATE_MACHINE_ARN"] = arns["provision"]
        os.environ["TEARDOWN_STATE_MACHINE_ARN"] = arns["teardown"]
        from fargate_app.api import routes
        from fargate_app.aws.clients import client
        from fargate_app.config import reset_settings

        reset_settings()
        made: list[str] = []

        def count(model: Any, **_: Any) -> None:
            made.append(model.name)

        for service in ("dynamodb", "stepfunctions"):
            client(service).meta.events.register("before-call", count)

        def call(method: str, path: str, query: dict[str, str] | None) -> dict[str, Any]:
            parts = path.strip("/").split("/")
            event = {
                "resource": "/apps" if len(parts) == 1 else "/apps/{cluster}/{namespace}/{app}",
                "path": path,
                "httpMethod": method,
                "headers": {},
                "queryStringParameters": query,
                "pathParameters": dict(zip(("cluster", "namespace", "app"), parts[1:], strict=False)) or None,
                "requestContext": {"requestId": "bench", "identity": {"userArn": CALLER}, "stage": "v1"},
                "body": None,
                "isBase64Encoded": False,
            }
            if method == "PUT":
                request = {"cluster": parts[1], "namespace": parts[2], "app": parts[3]}
                event["body"] = json.dumps({**request, "image": "public.ecr.aws/nginx/nginx:1.27", "cpu": "500m"})
            answer = routes.resolver.resolve(event, None)  # type: ignore[arg-type] # the routes read no Lambda context
            assert answer["statusCode"] in (200, 202), answer
            return json.loads(answer["body"])  # type: ignore[no-any-return]

        yield call, made, arns


def _running_in(arn: str, state: str) -> None:
    """The history AWS keeps of an execution in ``state`` (moto's own history of an execution it does not run says
    it succeeded)."""
    from datetime import UTC, datetime

    from moto.stepfunctions.models import stepfunctions_backends

    stamp = datetime(2026, 12, 1, tzinfo=UTC)
    events = [
        {"id": 1, "type": "ExecutionStarted", "timestamp": stamp, "executionStartedEventDetails": {}},
        {"id": 2, "type": "TaskStateEntered", "timestamp": stamp, "stateEnteredEventDetails": {"name": state}},
    ]
    execution = stepfunctions_backends[ACCOUNT][REGION].describe_execution(arn)
    # moto answers this execution with the history of one that is running there (a stand-in for the test only)
    execution.get_execution_history = lambda role_arn: events  # type: ignore[method-assign,assignment]


def _item(n: int, execution: str, state: str = "RUNNING", status: str = "SUCCEEDED") -> dict[str, Any]:
    """App ``n``'s inventory item as the workflow's Record states leave it, typed for PutItem."""
    from boto3.dynamodb.types import TypeSerializer

    cluster, namespace, app = "blog", f"team-{n % 10}", f"app-{n}"
    plain = {
        "app": f"{cluster}/{namespace}/{app}",
        "clusterName": cluster,
        "namespace": namespace,
        "appName": app,
        "clusterNamespace": f"{cluster}/{namespace}",
        "listing": "apps",
        "appState": state,
        "executionStatus": status,
        "kind": "provision",
        "revision": 1,
        "executionArn": execution,
        "requestedImage": "public.ecr.aws/nginx/nginx:stable",
        "updatedAt": f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}.{n:03d}Z",
        "resultJson": "{}",
        "requestJson": json.dumps(REQUEST | {"namespace": namespace, "app": app}),
        "version": 2,
    }
    return {name: TypeSerializer().serialize(value) for name, value in plain.items()}


def run() -> Figure:
    figure = Figure(9, "AWS calls of the API", __doc__.split("\n\n", 1)[1].replace("\n", " ").strip())
    with _api() as (call, made, arns):
        import boto3

        from fargate_app.api.executions import AppRef

        sfn, dynamodb = boto3.client("stepfunctions"), boto3.client("dynamodb")
        prefix = AppRef("blog", "team-0", "app-0").name_prefix
        for n in range(HISTORY):
            sfn.start_execution(stateMachineArn=arns["provision"], name=f"{prefix}-{n:016x}", input="{}")
        running = sfn.start_execution(stateMachineArn=arns["provision"], name=f"{prefix}-now", input="{}")
        _running_in(running["executionArn"], "CheckRollout")
        path = "/apps/blog/team-0/app-0"
        measured: dict[str, int] = {}
        for case, item in (
            ("finished app", _item(0, running["executionArn"])),
            ("running app", _item(0, running["executionArn"], "UPDATING", "RUNNING")),
        ):
            dynamodb.put_item(TableName=TABLE, Item=item)
            made.clear()
            call("GET", path, None)
            measured[case] = len(made)
        dynamodb.put_item(TableName=TABLE, Item=_item(0, running["executionArn"]))
        for case, method in (("delete", "DELETE"), ("update", "PUT")):
            made.clear()
            call(method, path, None)
            measured[case] = len(made)
            dynamodb.put_item(TableName=TABLE, Item=_item(0, running["executionArn"]))
        dynamodb.delete_item(TableName=TABLE, Key={"app": {"S": "blog/team-0/app-0"}})  # the listing's are its own

        for n in range(1, APPS + 1):
            dynamodb.put_item(TableName=TABLE, Item=_item(n, f"{running['executionArn']}-{n}"))
        made.clear()
        pages, token, listed = 0, None, 0
        while True:
            page = call("GET", "/apps", {"limit": str(PAGE), **({"nextToken": token} if token else {})})
            pages, listed, token = pages + 1, listed + len(page["apps"]), page["nextToken"]
            if token is None:
                break
        queries = made.count("Query")
    figure.rows += [
        Row(
            f"GET /apps/{{…}}, finished app, {HISTORY:,} executions",
            measured["finished app"],
            "calls",
            f"<= {CALLS_GOAL}",
            measured["finished app"] <= CALLS_GOAL,
        ),
        Row(
            f"GET /apps/{{…}}, running app, {HISTORY:,} executions",
            measured["running app"],
            "calls",
            f"<= {CALLS_GOAL}",
            measured["running app"] <= CALLS_GOAL,
        ),
        Row(
            f"DELETE /apps/{{…}}, finished app, {HISTORY:,} executions",
            measured["delete"],
            "calls",
            f"<= {START_CALLS_GOAL}",
            measured["delete"] <= START_CALLS_GOAL,
        ),
        Row(
            f"PUT /apps/{{…}} (an update), finished app, {HISTORY:,} executions",
            measured["update"],
            "calls",
            f"<= {START_CALLS_GOAL}",
            measured["update"] <= START_CALLS_GOAL,
        ),
        Row(
            f"GET /apps of {APPS:,} apps, {PAGE} a page: Queries per page",
            queries / pages,
            "queries",
            f"<= {QUERIES_PER_PAGE_GOAL}",
            queries / pages <= QUERIES_PER_PAGE_GOAL and listed == APPS,
            note=f"{pages} pages, {listed} apps listed, {len(made)} calls in all",
        ),
    ]
    return figure
