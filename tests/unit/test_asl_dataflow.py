"""The data-flow check of the state machines: every path a state reads is there on every route into it.

Task results come from the handlers themselves: each ``functions/<dir>/app.py`` returns ``<step>(...).to_json()``,
and that step function's return annotation is the pydantic model whose JSON schema the check uses.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from asl_dataflow import ANY, ERROR_OUTPUT, SCALAR, Shape, check, from_schema, obj
from figures import Figures
from project_template import MACHINES, TEMPLATE
from pydantic import BaseModel

from fargate_app.teardown import TeardownInput
from fargate_app.watchlist import ValidateCacheRuleEvent

ROOT = Path(__file__).resolve().parents[2]
# What starts each machine: the API or a console start (provision: anything, ValidateRequest checks it), the API's
# teardown document, EventBridge's CloudTrail event.
MACHINE_INPUTS: dict[str, Shape] = {
    "ProvisionStateMachine": ANY,
    "TeardownStateMachine": from_schema(TeardownInput.model_json_schema(by_alias=True), all_present=False),
    "WarmCacheStateMachine": from_schema(ValidateCacheRuleEvent.model_json_schema(by_alias=True), all_present=False),
}


def load_handler(function_dir: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"dataflow_{function_dir}", ROOT / "functions" / function_dir / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result_model(function_dir: str) -> type[BaseModel]:
    """The model a handler returns: the annotation of the step function whose ``.to_json()`` it returns."""
    path = ROOT / "functions" / function_dir / "app.py"
    handler = next(
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
    )
    assigned = {
        target.id: node.value
        for node in ast.walk(handler)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    called: set[str] = set()
    for node in ast.walk(handler):
        if not (isinstance(node, ast.Return) and isinstance(node.value, ast.Call)):
            continue
        dumped = node.value.func
        assert isinstance(dumped, ast.Attribute) and dumped.attr == "to_json", f"{path}: return <step>(...).to_json()"
        source = assigned.get(dumped.value.id, dumped.value) if isinstance(dumped.value, ast.Name) else dumped.value
        assert isinstance(source, ast.Call) and isinstance(source.func, ast.Name), f"{path}: {ast.dump(source)}"
        called.add(source.func.id)
    models = {typing.get_type_hints(getattr(load_handler(function_dir), name))["return"] for name in called}
    assert len(models) == 1, f"{path} returns {models}"
    return models.pop()  # type: ignore[no-any-return]


SDK_INTEGRATION = "arn:aws:states:::aws-sdk:"
BOTO_SERVICE_NAMES = {"sfn": "stepfunctions"}  # Step Functions' service names where boto3's differ


def sdk_result(resource: str) -> Shape:
    """An AWS SDK integration's answer: the members its API's model marks required, named in PascalCase as Step
    Functions gives them (whatever the service's own casing)."""
    import botocore.session

    service, action = resource.removeprefix(SDK_INTEGRATION).split(":")[:2]
    model = botocore.session.get_session().get_service_model(BOTO_SERVICE_NAMES.get(service, service))
    output = model.operation_model(action[:1].upper() + action[1:]).output_shape
    return obj(**{name[:1].upper() + name[1:]: SCALAR for name in output.required_members})


def task_results(machine: str, overrides: dict[str, type[BaseModel]] | None = None) -> dict[str, Shape]:
    """Each Task state (Map item processors included) → the shape of what its function returns."""
    definition = json.loads((ROOT / MACHINES[machine]["DefinitionUri"]).read_text())
    results: dict[str, Shape] = {}

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                visit(processor["States"])
            if state["Type"] == "Task" and str(state["Resource"]).startswith(SDK_INTEGRATION):
                results[name] = sdk_result(str(state["Resource"]))
            if state["Type"] != "Task" or not str(state["Resource"]).startswith("${"):
                continue  # an optimised integration's result (DynamoDB's answer) is whatever that API returns
            function = str(state["Resource"]).removeprefix("${").removesuffix("Arn}")
            code_dir = TEMPLATE["Resources"][function]["Properties"]["CodeUri"].strip("/").rsplit("/", 1)[-1]
            model = (overrides or {}).get(name) or result_model(code_dir)
            schema = model.model_json_schema(by_alias=True, mode="serialization")
            results[name] = from_schema(schema, all_present=True)

    visit(definition["States"])
    return results


def problems_of(machine: str, overrides: dict[str, type[BaseModel]] | None = None) -> list[str]:
    definition = (ROOT / MACHINES[machine]["DefinitionUri"]).read_text()
    return check(definition, task_results(machine, overrides), MACHINE_INPUTS[machine])


# --- the project's state machines ---------------------------------------------------------------------------------
@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_path_a_state_reads_is_provided_on_every_route(machine: str, figures: Figures) -> None:
    # Given the machine, its input contract and its handlers' result models
    # When every route is walked
    problems = problems_of(machine)
    figures.add("dataflow", machine=machine, problems=len(problems))

    # Then no state reads a path some route into it does not provide (AWS would fail with States.Runtime)
    assert problems == []


def test_the_rollout_loop_as_it_was_fails_the_check() -> None:
    # Given the provision's rollout loop before the fix, with what its CheckRollout returned then (no startedAt)
    definition = (Path(__file__).parent / "fixtures" / "rollout_loop_before_fix.asl.json").read_text()
    progress = obj(namespace=SCALAR, name=SCALAR, replicas=SCALAR, readyReplicas=SCALAR)
    old_status = obj(
        deployment=progress,
        pods=Shape("array", item=ANY),
        nodes=Shape("array", item=SCALAR),
        ready=SCALAR,
        attempt=SCALAR,
        nextWaitSeconds=SCALAR,
    )

    # When it is checked
    problems = check(definition, {"CheckRollout": old_status}, obj(request=ANY))

    # Then the second turn's read of $.rollout.startedAt is reported, with the state whose result lost it
    assert problems == [
        "CheckRollout.Parameters.startedAt.$ reads $.rollout.startedAt (not provided on the route from CheckRollout)"
    ]


def test_the_teardown_without_its_first_state_fails_for_a_console_input_without_provision() -> None:
    # Given the teardown machine starting at DeleteApp, as before the input was read with IsPresent
    definition = json.loads((ROOT / MACHINES["TeardownStateMachine"]["DefinitionUri"]).read_text())
    definition["StartAt"] = "DeleteApp"

    # When it is checked against the documented input, in which provision is optional
    problems = check(definition, task_results("TeardownStateMachine"), MACHINE_INPUTS["TeardownStateMachine"])

    # Then ReleaseFargateProfile's read of $.provision is reported
    assert problems == [
        "ReleaseFargateProfile.Parameters.provision.$ reads $.provision (not provided on the route from <input>)"
    ]


# --- the check itself ---------------------------------------------------------------------------------------------
def machine(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"StartAt": start, "States": states}


def test_pass_parameters_and_result_path_build_the_shape_that_later_states_read() -> None:
    # Given a Pass that builds {"x": {"y": 1}} under $.built, then a Task reading $.built.x.y and $.built.x.z
    definition = machine(
        {
            "A": {"Type": "Pass", "Parameters": {"x": {"y": 1}}, "ResultPath": "$.built", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "r",
                "Parameters": {"y.$": "$.built.x.y", "z.$": "$.built.x.z"},
                "End": True,
            },
        }
    )

    # Then only the read of z is a problem
    assert check(definition, {}, obj()) == [
        "B.Parameters.z.$ reads $.built.x.z (not provided on the route from <input>)"
    ]


def test_a_catch_replaces_the_result_by_the_error_object() -> None:
    # Given a Task whose result has "ok", caught into $.error, both routes joining at C which reads $.error.Cause
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "r",
                "ResultPath": "$.result",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "C"}],
                "Next": "C",
            },
            "C": {"Type": "Fail", "CausePath": "$.error.Cause"},
        }
    )

    # Then the success route does not provide $.error
    assert check(definition, {"A": obj(ok=SCALAR)}, obj()) == [
        "C.CausePath reads $.error.Cause (not provided on the route from <input>)"
    ]
    assert ERROR_OUTPUT.field("Cause") == SCALAR


def test_is_present_guarantees_the_path_on_its_branch_only() -> None:
    # Given a Choice testing IsPresent on $.maybe, both branches reading it
    definition = machine(
        {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.maybe", "IsPresent": True, "Next": "B"}],
                "Default": "C",
            },
            "B": {"Type": "Pass", "Parameters": {"m.$": "$.maybe"}, "End": True},
            "C": {"Type": "Pass", "Parameters": {"m.$": "$.maybe"}, "End": True},
        }
    )

    # Then only the Default branch's read is a problem
    assert check(definition, {}, obj()) == ["C.Parameters.m.$ reads $.maybe (not provided on the route from <input>)"]


def test_is_present_on_a_field_of_a_value_that_may_be_null_guarantees_both() -> None:
    # Given $.previous that may be null (ValidateRequest's ``previous``), and a Choice testing IsPresent on one of its
    # fields before a rule compares that field
    definition = machine(
        {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.previous.name", "IsPresent": True, "Next": "B"}],
                "Default": "C",
            },
            "B": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.previous.name", "StringEqualsPath": "$.name", "Next": "C"}],
                "Default": "C",
            },
            "C": {"Type": "Pass", "End": True},
        }
    )

    # Then the comparison reads paths that are there
    assert check(definition, {}, obj(previous=Shape("object", nullable=True), name=SCALAR)) == []


def test_a_result_path_into_a_value_that_may_not_be_an_object_is_a_problem() -> None:
    # Given an input that may be anything (a console start), and a Pass writing $.error into it
    definition = machine({"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.error", "End": True}})

    # Then applying the ResultPath is reported (AWS fails when the input is a string)
    assert check(definition, {}, ANY) == [
        "A.ResultPath reads $.error (not provided on the route from an input that is not an object there)"
    ]


def test_a_map_iterates_over_the_items_shape_and_its_result_is_an_array() -> None:
    # Given a Map over $.items (objects with "name"), its processor reading $.value.name, then a read of its result
    definition = machine(
        {
            "A": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"value.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {
                        "P": {
                            "Type": "Pass",
                            "Parameters": {"n.$": "$.value.name", "o.$": "$.value.other"},
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.out",
                "Next": "B",
            },
            "B": {"Type": "Pass", "Parameters": {"all.$": "$.out"}, "End": True},
        }
    )
    input_shape = obj(items=Shape("array", item=obj(name=SCALAR)))

    # Then the item's missing field is reported inside the Map, and the Map's result is there for B
    assert check(definition, {}, input_shape) == [
        "A/P.Parameters.o.$ reads $.value.other (not provided on the route from <input>)"
    ]


def test_a_loop_joins_what_each_turn_provides() -> None:
    # Given a loop whose first turn has $.loop.started but whose Task writes $.loop without it
    definition = machine(
        {
            "A": {"Type": "Pass", "Parameters": {"started": 1, "n": 0}, "ResultPath": "$.loop", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "r",
                "Parameters": {"s.$": "$.loop.started"},
                "ResultPath": "$.loop",
                "Next": "C",
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.loop.done", "BooleanEquals": True, "Next": "D"}],
                "Default": "B",
            },
            "D": {"Type": "Succeed"},
        }
    )

    # Then B's read is reported, naming the loop's way back
    assert check(definition, {"B": obj(done=SCALAR)}, obj()) == [
        "B.Parameters.s.$ reads $.loop.started (not provided on the route from B)"
    ]
