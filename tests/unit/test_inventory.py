"""The app inventory's own reading and writing (fargate_app/inventory.py), against moto's DynamoDB."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from unit_support import stubbed

from fargate_app.config import Settings
from fargate_app.errors import AppBusy, PermanentError
from fargate_app.inventory import (
    InventoryMisconfigured,
    last_good_revision,
    note_started,
    plain,
    read_item,
    refuse_while_another_runs,
    request_hash,
    table_name,
)

pytestmark = pytest.mark.usefixtures("aws")
KEY = "blog/fargate/demo-app"


def test_without_a_table_the_environment_is_said_incomplete(settings: Settings) -> None:
    with pytest.raises(InventoryMisconfigured) as refused:
        table_name(settings.model_copy(update={"apps_table_name": None}))
    assert refused.value.message == "the function's environment is incomplete: APPS_TABLE_NAME: Field required"


def test_the_request_hash_is_the_requests_identity_whatever_its_key_order() -> None:
    assert request_hash({"app": "a", "replicas": 1}) == request_hash({"replicas": 1, "app": "a"})
    assert request_hash({"app": "a", "replicas": 1}) != request_hash({"app": "a", "replicas": 2})


def test_items_read_as_plain_values_with_whole_numbers_as_int() -> None:
    item = {
        "whole": {"N": "2"},
        "fraction": {"N": "1.5"},
        "list": {"L": [{"N": "3"}, {"S": "x"}]},
        "map": {"M": {"n": {"N": "4"}}},
    }
    read = plain(item)
    assert read == {"whole": 2, "fraction": 1.5, "list": [3, "x"], "map": {"n": 4}}
    assert type(read["whole"]) is int and type(read["list"][0]) is int


def test_the_app_is_read_consistently(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # An eventually consistent read could miss the start the API noted a moment before
    with stubbed(monkeypatch, "fargate_app.inventory", "dynamodb") as dynamodb:
        dynamodb.add_response(
            "get_item",
            {},
            {"TableName": settings.apps_table_name, "Key": {"app": {"S": KEY}}, "ConsistentRead": True},
        )
        assert read_item(settings, KEY) is None


def test_the_inventorys_refusals_name_what_was_being_done(settings: Settings) -> None:
    missing = settings.model_copy(update={"apps_table_name": "no-such-table"})
    with pytest.raises(PermanentError) as read:
        read_item(missing, KEY)
    assert read.value.message.startswith(f"read app {KEY} from no-such-table: ResourceNotFoundException: ")
    with pytest.raises(PermanentError) as noted:
        note_started(missing, KEY, "provision", "arn:x:execution:m:e", "2025-01-01T00:00:00Z", "console")
    assert noted.value.message.startswith("note execution arn:x:execution:m:e in no-such-table: ")


def revision(**recorded: Any) -> dict[str, Any]:
    return {"lastGood": {"executionArn": "arn:x:execution:m:e", **recorded}}


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ({}, {"request": None, "caller": "console"}),  # no request kept, started from the console
        (
            {"requestJson": "{not json", "caller": "arn:aws:iam::1:user/u"},
            {"request": None, "caller": "arn:aws:iam::1:user/u"},
        ),
        ({"requestJson": json.dumps({"app": "demo-app"})}, {"request": {"app": "demo-app"}, "caller": "console"}),
    ],
)
def test_the_last_good_revision_reads_what_the_item_kept(recorded: dict[str, Any], expected: dict[str, Any]) -> None:
    read = last_good_revision(revision(**recorded))
    assert read is not None
    assert {key: read[key] for key in expected} == expected


class TestAnotherRunningExecution:
    @staticmethod
    def running(machines: dict[str, str]) -> str:
        sfn = boto3.client("stepfunctions")
        return str(sfn.start_execution(stateMachineArn=machines["provision"], input="{}")["executionArn"])

    def test_refused_naming_the_app_its_kind_and_the_execution(self, machines: dict[str, str]) -> None:
        # Given an item whose current execution still runs, its kind not recorded (items written before kinds were)
        current = self.running(machines)
        item = {"app": KEY, "executionArn": current, "executionStatus": "RUNNING"}
        with pytest.raises(AppBusy) as refused:
            refuse_while_another_runs(item, "arn:aws:states:us-west-2:111122223333:execution:m:mine")
        name = current.rsplit(":", 1)[-1]
        assert refused.value.message == (
            f"app {KEY} has a running provision execution, {name}: start again once it has ended (nothing was "
            f"created; {current})"
        )

    def test_an_item_that_records_an_ended_execution_asks_step_functions_nothing(
        self, machines: dict[str, str]
    ) -> None:
        # Given the item says its execution SUCCEEDED (even if Step Functions were to say otherwise)
        current = self.running(machines)
        item = {"app": KEY, "executionArn": current, "executionStatus": "SUCCEEDED"}
        # Then a start is not refused
        refuse_while_another_runs(item, "arn:aws:states:us-west-2:111122223333:execution:m:mine")
