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


# (the states, from A; the shapes of Task results by state; the input's shape; the problems the check reports)
CHECK_CASES = [
    pytest.param(
        # A Pass builds {"x": {"y": 1}} under $.built, then a Task reads $.built.x.y and $.built.x.z: only z is missing
        {
            "A": {"Type": "Pass", "Parameters": {"x": {"y": 1}}, "ResultPath": "$.built", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "r",
                "Parameters": {"y.$": "$.built.x.y", "z.$": "$.built.x.z"},
                "End": True,
            },
        },
        {},
        obj(),
        ["B.Parameters.z.$ reads $.built.x.z (not provided on the route from <input>)"],
        id="pass-parameters-and-result-path-build-the-shape-later-states-read",
    ),
    pytest.param(
        # A Task whose result has "ok", caught into $.error; both routes join at C, which reads $.error.Cause: the
        # success route does not provide $.error (a Catch replaces the result by the error object)
        {
            "A": {
                "Type": "Task",
                "Resource": "r",
                "ResultPath": "$.result",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "C"}],
                "Next": "C",
            },
            "C": {"Type": "Fail", "CausePath": "$.error.Cause"},
        },
        {"A": obj(ok=SCALAR)},
        obj(),
        ["C.CausePath reads $.error.Cause (not provided on the route from <input>)"],
        id="a-catch-replaces-the-result-by-the-error-object",
    ),
    pytest.param(
        # A Choice tests IsPresent on $.maybe and both branches read it: only the Default branch's read is a problem
        {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.maybe", "IsPresent": True, "Next": "B"}],
                "Default": "C",
            },
            "B": {"Type": "Pass", "Parameters": {"m.$": "$.maybe"}, "End": True},
            "C": {"Type": "Pass", "Parameters": {"m.$": "$.maybe"}, "End": True},
        },
        {},
        obj(),
        ["C.Parameters.m.$ reads $.maybe (not provided on the route from <input>)"],
        id="is-present-guarantees-the-path-on-its-branch-only",
    ),
    pytest.param(
        # $.previous may be null (ValidateRequest's ``previous``); a Choice tests IsPresent on one of its fields before
        # a rule compares that field: the comparison reads paths that are there
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
        },
        {},
        obj(previous=Shape("object", nullable=True), name=SCALAR),
        [],
        id="is-present-on-a-field-of-a-value-that-may-be-null-guarantees-both",
    ),
    pytest.param(
        # An input that may be anything (a console start), and a Pass writing $.error into it: applying the
        # ResultPath is reported (AWS fails when the input is a string)
        {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.error", "End": True}},
        {},
        ANY,
        ["A.ResultPath reads $.error (not provided on the route from an input that is not an object there)"],
        id="a-result-path-into-a-value-that-may-not-be-an-object-is-a-problem",
    ),
    pytest.param(
        # A Map over $.items (objects with "name"), its processor reading $.value.name and $.value.other, then a read
        # of its result: the item's missing field is reported inside the Map, and the Map's result is there for B
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
        },
        {},
        obj(items=Shape("array", item=obj(name=SCALAR))),
        ["A/P.Parameters.o.$ reads $.value.other (not provided on the route from <input>)"],
        id="a-map-iterates-over-the-items-shape-and-its-result-is-an-array",
    ),
    pytest.param(
        # A loop whose first turn has $.loop.started but whose Task writes $.loop without it: B's read is reported,
        # naming the loop's way back
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
        },
        {"B": obj(done=SCALAR)},
        obj(),
        ["B.Parameters.s.$ reads $.loop.started (not provided on the route from B)"],
        id="a-loop-joins-what-each-turn-provides",
    ),
]


@pytest.mark.parametrize(("states", "task_results", "input_shape", "problems"), CHECK_CASES)
def test_the_check_reports_exactly_the_reads_not_provided(
    states: dict[str, Any], task_results: dict[str, Shape], input_shape: Shape, problems: list[str]
) -> None:
    assert check(machine(states), task_results, input_shape) == problems


def test_the_error_object_of_a_catch_has_a_cause() -> None:
    assert ERROR_OUTPUT.field("Cause") == SCALAR
