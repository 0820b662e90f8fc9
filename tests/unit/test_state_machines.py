"""Static checks of every ASL file against the template, the error contract and the house rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from project_template import MACHINES, TEMPLATE

from fargate_app.config import Settings
from fargate_app.errors import all_error_names

ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
# "Not yet" errors whose Retry is the poll (one transition per check), with the setting after which the check itself
# ends the wait with PollTimeout; and the long waits for a busy cluster.
POLLED_BY_RETRY = {
    "ProfileNotYetActive": "PROFILE_WAIT_TIMEOUT_SECONDS",
    "ProfileNotYetDeleted": "PROFILE_WAIT_TIMEOUT_SECONDS",
    "RolloutNotYetReady": "ROLLOUT_TIMEOUT_SECONDS",
    "PodsNotYetGone": "PODS_GONE_TIMEOUT_SECONDS",
}
LONG_WAITS = {"ProfileOperationInProgress"}
LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# The DynamoDB integration's throttling and server errors (Step Functions developer guide, "Handling errors":
# an optimized integration's errors are the service's exception names prefixed with "DynamoDB.").
DYNAMODB_TRANSIENT = {
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
    "DynamoDB.AmazonDynamoDBException",
}
DYNAMODB_UPDATE = "arn:aws:states:::dynamodb:updateItem"
DYNAMODB_GET = "arn:aws:states:::dynamodb:getItem"
SFN_DESCRIBE = "arn:aws:states:::aws-sdk:sfn:describeExecution"
# An AWS SDK integration's errors are the service's and the code's names in PascalCase with "Exception" added
# (developer guide, "AWS SDK service integrations"); SfnException is the SDK's base class, for a code it does not model.
SFN_TRANSIENT = {"Sfn.SfnException", "Sfn.ThrottlingException"}


def _definition(machine: str) -> dict[str, Any]:
    return json.loads((ROOT / MACHINES[machine]["DefinitionUri"]).read_text())


def _substituted(machine: str) -> str:
    text = (ROOT / MACHINES[machine]["DefinitionUri"]).read_text()
    for key in MACHINES[machine]["DefinitionSubstitutions"]:
        fake = f"arn:aws:lambda:us-west-2:111122223333:function:{key.removesuffix('Arn')}"
        text = text.replace("${" + key + "}", fake if key.endswith("FunctionArn") else "fargate-app-apps")
    return text


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, those of Map item processors included."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        found[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(_states(processor))
    return found


def _function_of(machine: str, state: dict[str, Any]) -> str:
    return str(state["Resource"]).removeprefix("${").removesuffix("FunctionArn}")


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_asl_validator_accepts_the_definition(machine: str) -> None:
    assert ASL_VALIDATOR.exists(), "run `make node-deps` (npm ci) first"
    result = subprocess.run(
        [str(ASL_VALIDATOR), "--json-definition", _substituted(machine)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_placeholder_is_substituted_by_the_template(machine: str) -> None:
    text = (ROOT / MACHINES[machine]["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
    assert placeholders == set(MACHINES[machine]["DefinitionSubstitutions"])


def _granted(machine: str, action: str) -> list[Any]:
    return [
        statement["Resource"]
        for policy in MACHINES[machine]["Policies"]
        for statement in policy.get("Statement", [])
        if action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    ]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_substituted_function_exists_and_may_be_invoked(machine: str) -> None:
    properties = MACHINES[machine]
    invokable = _granted(machine, "lambda:InvokeFunction")
    functions = {key: value for key, value in properties["DefinitionSubstitutions"].items() if key.endswith("Arn")}
    for key, value in functions.items():
        function = value["Fn::GetAtt"][0]
        assert TEMPLATE["Resources"][function]["Type"] == "AWS::Serverless::Function", key
        assert {"Fn::GetAtt": [function, "Arn"]} in invokable, f"{machine} may not invoke {function}"
    assert len(invokable) == len(functions), "a grant for a function it does not call"


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_the_inventory_writes_go_to_the_apps_table_the_machine_may_update(machine: str) -> None:
    # Given the machine's DynamoDB tasks
    writes = [
        s
        for s in _states(_definition(machine)).values()
        if str(s.get("Resource", "")).startswith("arn:aws:states:::dynamodb:")
    ]
    updatable = _granted(machine, "dynamodb:UpdateItem")
    if not writes:
        # Then a machine that records nothing may update nothing
        assert updatable == [] and "AppsTableName" not in MACHINES[machine]["DefinitionSubstitutions"]
        return
    # Then each is an UpdateItem (or a GetItem) of the stack's AppsTable, the one table the machine's role may use
    reads = [s for s in writes if s["Resource"] == DYNAMODB_GET]
    assert {s["Resource"] for s in writes} - {DYNAMODB_GET} == {DYNAMODB_UPDATE}
    assert _granted(machine, "dynamodb:GetItem") == ([{"Fn::GetAtt": ["AppsTable", "Arn"]}] if reads else [])
    assert {s["Parameters"]["TableName"] for s in writes} == {"${AppsTableName}"}
    assert MACHINES[machine]["DefinitionSubstitutions"]["AppsTableName"] == {"Ref": "AppsTable"}
    assert TEMPLATE["Resources"]["AppsTable"]["Type"] == "AWS::DynamoDB::Table"
    assert updatable == [{"Fn::GetAtt": ["AppsTable", "Arn"]}]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_a_machine_describes_only_the_executions_its_role_may(machine: str) -> None:
    # Given the machine's DescribeExecution tasks (the teardown's check that no other execution of the app runs)
    describes = [s for s in _states(_definition(machine)).values() if s.get("Resource") == SFN_DESCRIBE]
    granted = _granted(machine, "states:DescribeExecution")
    # Then its role may describe the provision's and the teardown's executions, and no machine that does not ask
    if not describes:
        assert granted == []
        return
    [resources] = granted
    assert [r["Fn::Sub"].rsplit(":execution:", 1)[-1] for r in resources] == [
        "${AWS::StackName}-provision:*",
        "${AWS::StackName}-teardown:*",
    ]
    assert {MACHINES[m]["Name"]["Fn::Sub"] for m in ("ProvisionStateMachine", "TeardownStateMachine")} == {
        "${AWS::StackName}-provision",
        "${AWS::StackName}-teardown",
    }


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_custom_error_name_is_an_error_class(machine: str) -> None:
    known = all_error_names()
    for name, state in _states(_definition(machine)).items():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for error in rule["ErrorEquals"]:
                # States.*, Lambda.*, DynamoDB.* and Sandbox.Timedout (a Lambda timeout on current runtimes) are AWS's.
                if not error.startswith(("States.", "Lambda.", "DynamoDB.", "Sandbox.", "Sfn.")):
                    assert error in known, f"{machine}.{name}: {error} is not in fargate_app.errors"


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_task_retries_with_jittered_backoff_and_catches(machine: str) -> None:
    for name, state in _states(_definition(machine)).items():
        if state["Type"] != "Task":
            continue
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        if state["Resource"] in (DYNAMODB_UPDATE, DYNAMODB_GET):
            assert retried == DYNAMODB_TRANSIENT, f"{machine}.{name} does not retry DynamoDB's transient errors"
        elif state["Resource"] == SFN_DESCRIBE:
            assert retried == SFN_TRANSIENT, f"{machine}.{name} does not retry Step Functions' throttling"
        else:
            assert retried >= LAMBDA_TRANSIENT, f"{machine}.{name} does not retry Lambda's transient errors"
            # ReportWhatIsLeft calls no AWS API (it only reports): nothing to throttle it.
            assert "AwsThrottled" in retried or name == "ReportWhatIsLeft", f"{machine}.{name}: throttling not retried"
        for rule in state["Retry"]:
            if set(rule["ErrorEquals"]) & (set(POLLED_BY_RETRY) | LONG_WAITS):
                continue  # checked by the two tests below
            assert rule["BackoffRate"] >= 1 and rule["JitterStrategy"] == "FULL", f"{machine}.{name}"
            assert 0 < rule["MaxAttempts"] <= 30, f"{machine}.{name}: retries must be bounded"
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], f"{machine}.{name} has no catch-all"
        assert all("States.ALL" not in c["ErrorEquals"] for c in state["Catch"][:-1]), f"{machine}.{name}"


def _retriers(errors: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (machine, name, rule)
        for machine in sorted(MACHINES)
        for name, state in _states(_definition(machine)).items()
        for rule in state.get("Retry", [])
        if set(rule["ErrorEquals"]) & errors
    ]


def _pauses(rule: dict[str, Any]) -> list[float]:
    """The pauses before each retry, as Step Functions computes them before jitter (ASL: Retriers)."""
    cap = rule.get("MaxDelaySeconds", float("inf"))
    return [min(rule["IntervalSeconds"] * rule["BackoffRate"] ** n, cap) for n in range(rule["MaxAttempts"])]


def test_polls_are_retries_that_check_often_and_outlast_their_timeout() -> None:
    # Every poll raises "not yet" and lets a Retry wait: one transition per check. So the Retry must pace the checks
    # closely (the detection delay is the longest pause), never jitter them, and last longer than the poll's timeout
    # setting so that PollTimeout, with its message, is what normally ends a stuck wait.
    polls = _retriers(set(POLLED_BY_RETRY))
    assert {(machine, name, rule["ErrorEquals"][0]) for machine, name, rule in polls} == {
        ("ProvisionStateMachine", "CheckFargateProfile", "ProfileNotYetActive"),
        ("ProvisionStateMachine", "CheckRollout", "RolloutNotYetReady"),
        ("TeardownStateMachine", "CheckPodsGone", "PodsNotYetGone"),
        ("TeardownStateMachine", "CheckProfileDeleted", "ProfileNotYetDeleted"),
    }
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for machine, name, rule in polls:
        (error,) = rule["ErrorEquals"]
        setting = POLLED_BY_RETRY[error]
        timeout = int(variables[setting])
        assert timeout >= Settings.model_fields[setting.lower()].default, setting
        assert rule["JitterStrategy"] == "NONE", f"{machine}.{name}: a jittered poll detects late"
        assert max(_pauses(rule)) <= 10, f"{machine}.{name}: the detection delay must stay at or below 10 s"
        assert sum(_pauses(rule)) > timeout, f"{machine}.{name}: the Retry gives up before PollTimeout"


def test_waits_for_a_busy_cluster_are_short_jittered_and_bounded() -> None:
    waits = _retriers(LONG_WAITS)
    # Every state that creates or deletes a profile waits out a busy cluster (EKS: one profile operation at a time).
    assert {(machine, name) for machine, name, _ in waits} == {
        ("ProvisionStateMachine", "EnsureFargateProfile"),
        ("ProvisionStateMachine", "Compensate"),
        ("ProvisionStateMachine", "ReleasePreviousProfile"),
        ("TeardownStateMachine", "ReleaseFargateProfile"),
    }
    for machine, name, rule in waits:
        assert rule["JitterStrategy"] == "FULL", f"{machine}.{name}: concurrent executions must spread out"
        assert rule.get("MaxDelaySeconds", 0) <= 15, f"{machine}.{name}: a long pause idles past a free cluster"
        assert 15 * 60 <= sum(_pauses(rule)) / 2 <= 60 * 60, f"{machine}.{name}: wait about 15-60 minutes on average"


def _edges(state: dict[str, Any]) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catch["Next"] for catch in state.get("Catch", [])]
    return [t for t in targets if t]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_no_state_machine_loops_every_poll_is_a_retry(machine: str) -> None:
    # A loop of states would carry its own state from turn to turn (what a turn forgets, the next fails on) and cost
    # several transitions per check; a Retry re-runs one state with the same input. So the state graph has no cycle,
    # and the execution as a whole is bounded too.
    definition = _definition(machine)
    states = definition["States"]
    assert 0 < definition["TimeoutSeconds"] <= 86_400, "the whole execution must be bounded too"
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, f"{machine}: a loop through {name}"
        visiting.add(name)
        for target in _edges(states[name]):
            visit(target)
        visiting.discard(name)
        done.add(name)

    visit(definition["StartAt"])


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_state_is_reachable(machine: str) -> None:
    definition = _definition(machine)
    states = definition["States"]
    seen, pending = set(), [definition["StartAt"]]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_edges(states[name]))
    assert seen == set(states)


def test_provision_fails_naming_the_step_after_compensating() -> None:
    states = _definition("ProvisionStateMachine")["States"]
    tasks = [
        n
        for n, s in states.items()
        if s["Type"] == "Task"
        and n not in ("ValidateRequest", "Compensate", "ReportWhatIsLeft", "ReleasePreviousProfile")
        and s["Resource"] != DYNAMODB_UPDATE
    ]
    assert tasks, "no step to compensate"
    for name in tasks:
        (catch,) = states[name]["Catch"]
        recorder = states[catch["Next"]]
        assert (recorder["Result"], recorder["Next"]) == (name, "Compensate"), name
    # Compensate's report is recorded in the inventory, then the execution fails with it (also when recording fails)
    record = states[states["Compensate"]["Next"]]
    assert (record["Resource"], record["Next"], record["Catch"][-1]["Next"]) == (
        DYNAMODB_UPDATE,
        "ProvisionFailed",
        "ProvisionFailed",
    )
    assert states["ProvisionFailed"]["Type"] == "Fail"


def test_an_update_releases_the_profile_it_left_and_succeeds_whatever_the_release_says() -> None:
    # The app runs its new revision when the release comes: a failed release is reported in the result, and nothing
    # the update made is compensated; a first provision, or an update on the same profile, releases nothing.
    states = _definition("ProvisionStateMachine")["States"]
    known = states[states["ReportResult"]["Next"]]
    (present,) = [(c["Variable"], c["IsPresent"], c["Next"]) for c in known["Choices"]]
    assert known["Default"] == "RecordProvisionSucceeded"
    assert present[:2] == ("$.previous.fargateProfileName", True)
    choice = states[present[2]]
    assert [(c["Variable"], c["Next"]) for c in choice["Choices"]] == [
        ("$.previous.fargateProfileName", "RecordProvisionSucceeded")
    ] * 2
    assert choice["Choices"][-1]["StringEqualsPath"] == "$.fargateProfile.name"
    release = states[choice["Default"]]
    (catch,) = release["Catch"]
    assert (release["Parameters"]["profileName.$"], release["ResultPath"], release["Next"]) == (
        "$.previous.fargateProfileName",
        "$.result.previousProfile",
        "RecordProvisionSucceeded",
    )
    assert (catch["ErrorEquals"], catch["ResultPath"], catch["Next"]) == (
        ["States.ALL"],
        "$.result.previousProfile",
        "RecordProvisionSucceeded",
    )


def test_a_refused_request_ends_without_compensation() -> None:
    # Nothing exists yet when ValidateRequest refuses: the execution ends with its error, Compensate never runs.
    states = _definition("ProvisionStateMachine")["States"]
    (catch,) = states["ValidateRequest"]["Catch"]
    refused = states[catch["Next"]]
    assert (refused["Type"], refused["ErrorPath"], refused["CausePath"]) == ("Fail", "$.Error", "$.Cause")


def test_a_compensation_that_fails_still_reports_the_steps_error() -> None:
    # Past its retries, Compensate's Catch goes to the report (same function, nothing deleted), which ends at
    # ProvisionFailed with the step's error; the static CompensationFailed is only for a function that cannot run.
    states = _definition("ProvisionStateMachine")["States"]
    (catch,) = states["Compensate"]["Catch"]
    report = states[catch["Next"]]
    assert report["Resource"] == states["Compensate"]["Resource"]
    assert report["Parameters"] == {"state.$": "$", "reportOnly": True}
    assert (report["ResultPath"], report["Next"]) == ("$.compensation", states["Compensate"]["Next"])
    (last,) = report["Catch"]
    assert states[last["Next"]]["Error"] == "CompensationFailed"


def test_the_warm_cache_rule_matches_the_cloudtrail_event_only() -> None:
    from moto.events.models import EventPattern

    pattern = EventPattern.load(
        json.dumps(MACHINES["WarmCacheStateMachine"]["Events"]["PullThroughCacheRuleCreated"]["Properties"]["Pattern"])
    )

    def event(name: str, source: str = "aws.ecr", error: str | None = None) -> dict[str, Any]:
        detail: dict[str, Any] = {"eventSource": source.replace("aws.", "") + ".amazonaws.com", "eventName": name}
        if error:
            detail["errorCode"] = error
        return {"source": source, "detail-type": "AWS API Call via CloudTrail", "detail": detail}

    assert pattern.matches_event(event("CreatePullThroughCacheRule"))
    assert not pattern.matches_event(event("DeletePullThroughCacheRule"))
    assert not pattern.matches_event(
        event("CreatePullThroughCacheRule", error="PullThroughCacheRuleAlreadyExistsException")
    )
    assert not pattern.matches_event(event("CreateFargateProfile", source="aws.eks"))
