"""The API's reading of the app inventory (fargate_app/api/app_records.py), against moto's DynamoDB: the status
document an item gives, and the listing's pages. The routes validate their query first; these functions refuse bad
input themselves too (they are the inventory's readers for any caller)."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from unit_support import stubbed

from fargate_app.api.app_records import MAX_CAUSE, app_record, list_apps
from fargate_app.api.executions import AppRef
from fargate_app.config import Settings
from fargate_app.errors import InvalidRequest, PermanentError

pytestmark = pytest.mark.usefixtures("aws")
ARN = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:blog-fargate-demo-app-1"
NEXT = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:blog-fargate-demo-app-2"


def put(
    settings: Settings, cluster: str = "blog", namespace: str = "fargate", app: str = "demo-app", **item: Any
) -> None:
    attributes = {
        "app": f"{cluster}/{namespace}/{app}",
        "listing": "apps",
        "clusterName": cluster,
        "clusterNamespace": f"{cluster}/{namespace}",
        "namespace": namespace,
        "appName": app,
        **item,
    }
    serializer = TypeSerializer()
    boto3.client("dynamodb").put_item(
        TableName=settings.apps_table_name, Item={k: serializer.serialize(v) for k, v in attributes.items()}
    )


def record(settings: Settings) -> dict[str, Any] | None:
    return app_record(settings, AppRef("blog", "fargate", "demo-app"))


# An execution the item recorded the end of (a teardown by an IAM user, which failed)
ENDED = {
    "executionArn": ARN,
    "executionStatus": "FAILED",
    "kind": "teardown",
    "caller": "arn:aws:iam::111122223333:user/ops",
    "startDate": "2025-01-01T00:00:00Z",
    "stopDate": "2025-01-01T00:05:00+00:00",
}
SUMMARY = {"cluster": "blog", "namespace": "fargate", "app": "demo-app", "image": {"requested": None, "cached": None}}


class TestTheStatusDocument:
    def test_an_ended_execution_reads_as_the_item_recorded_it(self, settings: Settings) -> None:
        put(
            settings,
            **ENDED,
            failure={"error": "RolloutFailed", "cause": "x" * (MAX_CAUSE + 50)},
            appState="FAILED",
            revision=2,
            updatedAt="2025-01-01T00:05:01Z",
        )
        assert record(settings) == {
            **SUMMARY,
            "status": "FAILED",
            "kind": "teardown",
            "caller": "arn:aws:iam::111122223333:user/ops",
            "executionArn": ARN,
            "executionName": "blog-fargate-demo-app-1",
            "startDate": "2025-01-01T00:00:00+00:00",
            "stopDate": "2025-01-01T00:05:00+00:00",
            "currentState": None,
            "result": None,
            "error": {"error": "RolloutFailed", "cause": "x" * (MAX_CAUSE - 1) + "…"},
            "state": "FAILED",
            "revision": 2,
            "updatedAt": "2025-01-01T00:05:01+00:00",
        }

    def test_a_start_the_api_noted_is_the_apps_execution_until_it_records_itself(self, settings: Settings) -> None:
        # Given the item's recorded execution ended, and the API's note of a newer start (its kind not noted)
        put(
            settings,
            **ENDED,
            pendingExecution=NEXT,
            pendingStart="2025-01-02T00:00:00Z",
            pendingCaller="arn:aws:iam::111122223333:user/dev",
        )
        # Then the document is the noted start's (Step Functions no longer knows it here: the item is all there is)
        document = record(settings)
        assert document is not None
        assert {
            key: document[key] for key in ("status", "kind", "caller", "executionArn", "startDate", "stopDate")
        } == {
            "status": "RUNNING",
            "kind": "provision",  # a noted start without its kind is a provision
            "caller": "arn:aws:iam::111122223333:user/dev",
            "executionArn": NEXT,
            "startDate": "2025-01-02T00:00:00+00:00",
            "stopDate": None,
        }

    def test_a_note_of_the_recorded_execution_itself_changes_nothing(self, settings: Settings) -> None:
        succeeded = {**ENDED, "executionStatus": "SUCCEEDED", "resultJson": json.dumps({"app": "demo-app"})}
        put(settings, **succeeded, pendingExecution=ARN, pendingStart="2025-01-02T00:00:00Z")
        document = record(settings)
        assert document is not None
        assert (document["status"], document["startDate"], document["result"], document["caller"]) == (
            "SUCCEEDED",
            "2025-01-01T00:00:00+00:00",
            {"app": "demo-app"},
            "arn:aws:iam::111122223333:user/ops",
        )

    def test_a_date_that_is_no_iso_date_is_shown_as_written(self, settings: Settings) -> None:
        put(settings, executionArn=ARN, executionStatus="SUCCEEDED", startDate="yesterday")
        document = record(settings)
        assert document is not None and document["startDate"] == "yesterday"
        assert document["caller"] == "console"  # an execution without a recorded caller was started from the console


class TestTheListing:
    @pytest.mark.parametrize(
        ("arguments", "problems"),
        [
            ({"namespace": "fargate"}, {"namespace": "needs cluster: a namespace is listed within its cluster"}),
            ({"limit": 0}, {"limit": "must be a whole number from 1 to 100"}),
            ({"limit": 101}, {"limit": "must be a whole number from 1 to 100"}),
            (
                {"next_token": "not-a-token"},
                {"nextToken": "is not a token this listing returned: send the one it gave, unchanged"},
            ),
        ],
    )
    def test_bad_arguments_are_refused_by_name(
        self, settings: Settings, arguments: dict[str, Any], problems: dict[str, str]
    ) -> None:
        with pytest.raises(InvalidRequest) as refused:
            list_apps(settings, **arguments)
        assert refused.value.problems == problems

    @pytest.mark.parametrize(
        "value",
        [{"N": "1"}, {"S": 5}, {"S": "x", "N": "1"}],
        ids=["a number", "a string attribute holding a number", "two types"],
    )
    def test_a_token_whose_values_are_not_string_attributes_is_refused(self, settings: Settings, value: Any) -> None:
        key = {"app": {"S": "blog/fargate/a"}, "listing": value, "updatedAt": {"S": "2025-01-01T00:00:00Z"}}
        token = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
        with pytest.raises(InvalidRequest) as refused:
            list_apps(settings, next_token=token)
        assert list(refused.value.problems) == ["nextToken"]

    def test_pages_run_newest_first_from_one_page_to_the_next(self, settings: Settings) -> None:
        for number in (1, 2, 3):
            put(settings, app=f"app-{number}", executionArn=f"{ARN}-{number}", updatedAt=f"2025-01-0{number}T00:00:00Z")
        first = list_apps(settings, limit=1)
        assert [a["app"] for a in first["apps"]] == ["app-3"]
        assert first["apps"][0] == {
            "cluster": "blog",
            "namespace": "fargate",
            "app": "app-3",
            "state": None,
            "revision": None,
            "image": {"requested": None, "cached": None},
            "updatedAt": "2025-01-03T00:00:00+00:00",
            "executionArn": f"{ARN}-3",
        }
        rest = list_apps(settings, limit=100, next_token=first["nextToken"])
        assert ([a["app"] for a in rest["apps"]], rest["nextToken"]) == (["app-2", "app-1"], None)

    def test_a_namespace_of_a_cluster_is_listed_alone(self, settings: Settings) -> None:
        put(settings, app="web", updatedAt="2025-01-01T00:00:00Z")
        put(settings, namespace="other", app="api", updatedAt="2025-01-02T00:00:00Z")
        put(settings, cluster="shop", app="cart", updatedAt="2025-01-03T00:00:00Z")
        assert [a["app"] for a in list_apps(settings, "blog", "fargate")["apps"]] == ["web"]
        assert [a["app"] for a in list_apps(settings, "blog")["apps"]] == ["api", "web"]

    def test_a_page_without_items_lists_none(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        # Items is optional in Query's answer (its service model)
        with stubbed(monkeypatch, "fargate_app.api.app_records", "dynamodb") as dynamodb:
            dynamodb.add_response("query", {"Count": 0})
            assert list_apps(settings) == {"apps": [], "nextToken": None}

    def test_dynamodb_refusing_names_the_table(self, settings: Settings) -> None:
        with pytest.raises(PermanentError) as refused:
            list_apps(settings.model_copy(update={"apps_table_name": "no-such-table"}))
        assert refused.value.message.startswith("list apps of no-such-table: ResourceNotFoundException")
