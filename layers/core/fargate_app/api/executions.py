"""The Step Functions side of the API: one execution name per (app, request), replays, conflicts and status.

Step Functions rules this module lives with (API reference, StartExecution): a name is 1–80 characters (we keep to
``[A-Za-z0-9_-]`` so that CloudWatch logging works) and is unique per state machine for 90 days; starting the same
name with the same input while that execution is open returns it; the same name after it closed, or with another
input, fails with ``ExecutionAlreadyExists``. ListExecutions has no name filter, so the app's executions are found by
the name prefix every execution of that app shares.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.config import Settings
from fargate_app.errors import FargateAppError, Misconfigured, PermanentError, truncate
from fargate_app.inventory import app_key, canonical_json, note_started
from fargate_app.models import ProvisionRequest
from fargate_app.observability import logger

MAX_NAME = 80
# Budget of an 80-character name: readable(40) "-" app-hash(8) ["-teardown"] "-" request-hash(16) ["-" attempt(≤3)].
READABLE_MAX = 40
MAX_ATTEMPTS = 999
# ListExecutions pages hold up to 1000; closed executions stay listed for 90 days. The bound keeps one API call
# well inside API Gateway's 29-second limit even for a state machine with a very long history.
LIST_PAGE_SIZE = 1000
MAX_LISTED = 20_000
MAX_HISTORY_EVENTS = 1000
MAX_CAUSE = 2000

Kind = Literal["provision", "teardown"]
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
CLOSED_WITH_ERROR = {"FAILED": "States.Failed", "TIMED_OUT": "States.Timeout", "ABORTED": "States.Aborted"}


class ApiMisconfigured(Misconfigured):
    """The API function lacks a state machine ARN, or its route lacks AWS_IAM: a deployment fault."""


def state_machine(settings: Settings, kind: Kind) -> str:
    """Raises: ApiMisconfigured when the API function's environment does not name the ``kind`` state machine."""
    arn = settings.provision_state_machine_arn if kind == "provision" else settings.teardown_state_machine_arn
    if not arn:
        variable = f"{kind.upper()}_STATE_MACHINE_ARN"
        raise ApiMisconfigured(f"the API function's environment is incomplete: {variable}: Field required")
    return arn


class AppNotFound(FargateAppError):
    """The app has no execution the API can find."""


class ExecutionConflict(FargateAppError):
    """Another execution for the app is running; starting one now would race it."""

    def __init__(self, message: str, execution_arn: str) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn


@dataclass(frozen=True)
class AppRef:
    cluster: str
    namespace: str
    app: str

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.app}"

    @property
    def status_url(self) -> str:
        return f"/apps/{self.cluster}/{self.namespace}/{self.app}"

    @property
    def name_prefix(self) -> str:
        """Shared by every execution of this app. The hash keeps apps apart when the readable part is truncated
        or ambiguous (cluster names may contain '-', so ``a-b``/``c`` and ``a``/``b-c`` read alike)."""
        readable = f"{self.cluster}-{self.namespace}-{self.app}"[:READABLE_MAX].rstrip("-_")
        return f"{readable}-{_digest(str(self), 8)}"


@dataclass(frozen=True)
class ExecutionSummary:
    arn: str
    name: str
    status: str
    start_date: datetime
    kind: Kind
    stop_date: datetime | None = None


@dataclass(frozen=True)
class StartedExecution:
    arn: str
    name: str
    status: str
    kind: Kind
    replayed: bool
    start_date: datetime | None = None


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def provision_base_name(app: AppRef, request_document: dict[str, Any]) -> str:
    return f"{app.name_prefix}-{_digest(canonical_json(request_document), 16)}"


def teardown_base_name(app: AppRef, teardown_input: dict[str, Any], source_execution: str) -> str:
    return f"{app.name_prefix}-teardown-{_digest(source_execution + canonical_json(teardown_input), 16)}"


def attempt_name(base: str, attempt: int) -> str:
    return base if attempt == 1 else f"{base}-{attempt}"


def attempt_of(name: str, base: str) -> int | None:
    """1 for ``base``, n for ``base-n``; None for a name of another request."""
    if name == base:
        return 1
    suffix = name.removeprefix(f"{base}-")
    return int(suffix) if suffix != name and suffix.isdigit() else None


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def list_app_executions(settings: Settings, app: AppRef) -> list[ExecutionSummary]:
    """Every provision and teardown execution of the app, newest first.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    prefix = f"{app.name_prefix}-"
    found: list[ExecutionSummary] = []
    kinds: tuple[Kind, ...] = ("provision", "teardown")
    for kind in kinds:
        machine = state_machine(settings, kind)
        with aws_errors(f"list executions of {machine}"):
            pages = client("stepfunctions").get_paginator("list_executions")
            for page in pages.paginate(
                stateMachineArn=machine, PaginationConfig={"PageSize": LIST_PAGE_SIZE, "MaxItems": MAX_LISTED}
            ):
                found.extend(
                    ExecutionSummary(
                        item["executionArn"],
                        item["name"],
                        item["status"],
                        item["startDate"],
                        kind,
                        item.get("stopDate"),
                    )
                    for item in page.get("executions", [])
                    if item["name"].startswith(prefix)
                )
    return sorted(found, key=lambda e: e.start_date, reverse=True)


def describe_execution(arn: str) -> dict[str, Any]:
    """Raises: AwsThrottled, PermanentError (translated)."""
    with aws_errors(f"describe execution {arn}"):
        return dict(client("stepfunctions").describe_execution(executionArn=arn))


# The history event that ends an execution → the status it ends with (Step Functions API reference, HistoryEvent).
ENDING_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}


@dataclass(frozen=True)
class ExecutionTail:
    """What the newest page of an execution's history says: the state it entered last, and the status it ended with
    (None while it runs)."""

    current_state: str | None
    ended: str | None = None


def execution_tail(arn: str) -> ExecutionTail:
    """One GetExecutionHistory call, newest first and without inputs/outputs (smaller, and they may be large): a
    profile poll adds three events per retry, so one large page finds the latest state at once. Within the page the
    highest event id wins, so the answer does not depend on page order.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    with aws_errors(f"read the history of execution {arn}"):
        page = client("stepfunctions").get_execution_history(
            executionArn=arn, reverseOrder=True, includeExecutionData=False, maxResults=MAX_HISTORY_EVENTS
        )
    events = sorted(page.get("events", []), key=lambda e: int(e.get("id", 0)), reverse=True)
    entered = next((e for e in events if str(e.get("type", "")).endswith("StateEntered")), None)
    current = str((entered or {}).get("stateEnteredEventDetails", {}).get("name") or "") or None
    ending = next((e for e in events if e.get("type") in ENDING_EVENTS), None)
    return ExecutionTail(current, ENDING_EVENTS[str(ending["type"])] if ending else None)


def closed_error(described: dict[str, Any], kind: str) -> dict[str, str] | None:
    """The ``error`` of a status document for a DescribeExecution answer: None unless it closed with an error; a
    provision ValidateRequest refused reads as every other failure report (``refusal_cause``)."""
    status = str(described["status"])
    if status not in CLOSED_WITH_ERROR:
        return None
    cause = described.get("cause")
    reshaped = refusal_cause(cause) if kind == "provision" else None
    return {
        "error": described.get("error") or CLOSED_WITH_ERROR[status],
        "cause": truncate(reshaped or cause or f"the execution ended {status}", MAX_CAUSE),
    }


def _parse_json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        logger.warning("execution data is not JSON", extra={"length": len(text)})
        return None


def _start_or_replay(
    settings: Settings,
    app: AppRef,
    kind: Kind,
    base: str,
    input_document: dict[str, Any],
    executions: list[ExecutionSummary],
) -> StartedExecution:
    """Start ``base`` (or its next attempt), or return the execution a replay of the same call refers to.

    A replay gets the same execution while it runs, and after it succeeded as long as nothing newer happened to the
    app (a provision's success only within REPLAY_WINDOW_SECONDS of its end: later, the same request re-applies the
    app). A failed execution, one superseded by a later execution for the app, or a provision's success past that
    window is followed by a new attempt (``base-2``…): its name is taken for 90 days, and the caller clearly wants
    the work done again.

    Raises:
        ExecutionConflict: another execution for the app is running, the name is taken by another input, or the
            request has had its MAX_ATTEMPTS attempts.
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    lineage = {e.arn: attempt for e in executions if e.kind == kind and (attempt := attempt_of(e.name, base))}
    running_other = next((e for e in executions if e.status == RUNNING and e.arn not in lineage), None)
    if running_other is not None:
        raise ExecutionConflict(
            f"app {app} has a running {running_other.kind} execution {running_other.name} for another request; "
            f"wait until it finishes (GET {app.status_url}), then send the request again",
            running_other.arn,
        )
    attempt = 1
    if lineage:
        newest = max((e for e in executions if e.arn in lineage), key=lambda e: lineage[e.arn])
        if newest.status == RUNNING or _answers_a_replay(settings, newest, executions[0]):
            return StartedExecution(newest.arn, newest.name, newest.status, kind, True, newest.start_date)
        attempt = lineage[newest.arn] + 1
        if attempt > MAX_ATTEMPTS:  # the caller's to change (409 with the last attempt), not Step Functions' (502)
            raise ExecutionConflict(
                f"app {app}: {MAX_ATTEMPTS} attempts of this request already; change the request", newest.arn
            )
    name = attempt_name(base, attempt)
    assert len(name) <= MAX_NAME, name
    machine = state_machine(settings, kind)
    body = canonical_json(input_document)
    sfn = client("stepfunctions")
    with aws_errors(f"start {kind} execution {name}", absent={"ExecutionAlreadyExists"}):
        started = sfn.start_execution(stateMachineArn=machine, name=name, input=body)
        logger.info("execution started", extra={"execution_arn": started["executionArn"], "kind": kind})
        return StartedExecution(started["executionArn"], name, RUNNING, kind, False, started.get("startDate"))
    # Another call with the same name won the race between our listing and our start.
    existing = describe_execution(execution_arn(machine, name))
    if _without_caller(_parse_json(existing.get("input"))) != _without_caller(input_document):
        raise ExecutionConflict(
            f"execution name {name} is taken by an execution with another input; change the request",
            existing["executionArn"],
        )
    return StartedExecution(existing["executionArn"], name, existing["status"], kind, True, existing.get("startDate"))


def _noted(settings: Settings, app: AppRef, started: StartedExecution, caller: str) -> StartedExecution:
    """A running execution is noted in the app's item (a replay too: its first answer may not have got that far), so
    that the app's status is its own from now on, also before it records itself.

    Raises:
        AwsThrottled, PermanentError: DynamoDB refused (translated); a retry of the call replays the execution and
            notes it again.
    """
    if started.status == RUNNING:
        when = started.start_date.isoformat() if started.start_date else ""
        note_started(settings, app_key(app.cluster, app.namespace, app.app), started.kind, started.arn, when, caller)
    return started


def _without_caller(document: Any) -> Any:
    """The input as the execution name hashes it: who asked, and what ran before, do not make another request."""
    if not isinstance(document, dict):
        return document
    return {k: v for k, v in document.items() if k not in ("caller", "previous")}


def _answers_a_replay(settings: Settings, execution: ExecutionSummary, newest_of_app: ExecutionSummary) -> bool:
    """A finished execution still answers its request: it succeeded, nothing happened to the app since, and, for a
    provision, it ended within REPLAY_WINDOW_SECONDS (a client's retry; later, the request re-applies the app)."""
    if execution.status != SUCCEEDED or execution.arn != newest_of_app.arn:
        return False
    if execution.kind != "provision" or execution.stop_date is None:
        return True
    return (datetime.now(UTC) - execution.stop_date).total_seconds() <= settings.replay_window_seconds


def _replays(execution: ExecutionSummary, base: str) -> bool:
    """The execution is an attempt of the provision named ``base`` (the same request)."""
    return execution.kind == "provision" and attempt_of(execution.name, base) is not None


def last_good_revision(executions: list[ExecutionSummary]) -> dict[str, Any] | None:
    """The ApplyApp input of the app's last good revision: its newest successful provision, unless a successful
    teardown came after it (then the app is gone and a provision is a first one). Its result holds everything
    ApplyApp needs; a result without it (a provision of an older version) gives None.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    succeeded = next((e for e in executions if e.status == SUCCEEDED), None)
    if succeeded is None or succeeded.kind != "provision":
        return None
    result = _parse_json(describe_execution(succeeded.arn).get("output"))
    if not isinstance(result, dict):
        return None
    image, profile = result.get("image"), result.get("fargateProfile")
    if not (isinstance(result.get("request"), dict) and isinstance(image, dict) and isinstance(profile, dict)):
        return None
    return {
        "executionArn": succeeded.arn,
        "request": result["request"],
        "image": {"cached": image.get("cached")},
        "caller": result.get("caller") or "console",
        "fargateProfileName": profile.get("name"),
    }


def start_provision(settings: Settings, request: ProvisionRequest, caller: str) -> StartedExecution:
    """Start (or replay) the provision execution for a validated request, recording ``caller`` (the IAM principal
    API Gateway authorized) in its input, and for an update the app's last good revision (``previous``): a failed
    update applies it again instead of deleting the app.

    Raises:
        ExecutionConflict: an execution for another request of the app, or its teardown, is running.
        AwsThrottled, PermanentError: Step Functions or DynamoDB refused (translated).
    """
    app = AppRef(request.cluster, request.namespace, request.app)
    document = request.to_json()
    executions = list_app_executions(settings, app)
    base = provision_base_name(app, document)
    execution_input: dict[str, Any] = {"request": document, "caller": caller}
    # The last good revision costs a DescribeExecution: read it only when an execution may start (nothing runs, and
    # this is not a replay of the app's newest execution, which succeeded).
    replays_success = (
        bool(executions) and _replays(executions[0], base) and _answers_a_replay(settings, executions[0], executions[0])
    )
    if not any(e.status == RUNNING for e in executions) and not replays_success:
        previous = last_good_revision(executions)
        if previous is not None:
            execution_input["previous"] = previous
    started = _start_or_replay(settings, app, "provision", base, execution_input, executions)
    return _noted(settings, app, started, caller)


def start_teardown(settings: Settings, app: AppRef, caller: str) -> StartedExecution:
    """Start (or replay) the teardown of what the app's latest successful (else latest) provision built, recording
    ``caller`` in its input.

    Raises:
        AppNotFound: the app was never provisioned through this API.
        ExecutionConflict: a provision (or another teardown) for the app is running.
        PermanentError: the provision's input holds no request; Step Functions refused (translated).
        AwsThrottled: Step Functions throttled.
    """
    executions = list_app_executions(settings, app)
    provisions = [e for e in executions if e.kind == "provision"]
    if not provisions:
        raise AppNotFound(f"app {app} was never provisioned: nothing to tear down")
    running = next((e for e in provisions if e.status == RUNNING), None)
    if running is not None:
        raise ExecutionConflict(
            f"app {app} is being provisioned by {running.name}; wait until it finishes (GET {app.status_url}), "
            "then delete it",
            running.arn,
        )
    source = next((e for e in provisions if e.status == SUCCEEDED), provisions[0])
    described = describe_execution(source.arn)
    provision_input = _parse_json(described.get("input"))
    if not isinstance(provision_input, dict) or not isinstance(provision_input.get("request"), dict):
        raise PermanentError(f"provision execution {source.arn} has no request in its input: tear it down by hand")
    document = {"request": provision_input["request"], "provision": _parse_json(described.get("output"))}
    base = teardown_base_name(app, document, source.name)
    started = _start_or_replay(settings, app, "teardown", base, {**document, "caller": caller}, executions)
    return _noted(settings, app, started, caller)


def refusal_cause(cause: str | None) -> str | None:
    """A provision refused by ValidateRequest ends at once with the function's error payload as its cause
    (``{"errorType", "errorMessage", …}``); in the failure report's shape of every other step (the Compensate step
    writes it) so clients read one shape. None for any other cause."""
    payload = _parse_json(cause)
    if not (isinstance(payload, dict) and "errorMessage" in payload and "errorType" in payload):
        return None
    report = {
        "step": "ValidateRequest",
        "error": payload["errorType"],
        "cause": payload["errorMessage"],
        "compensated": [],
        "leftovers": [],
        "kept": [],
    }
    return json.dumps(report)


def app_status(settings: Settings, app: AppRef) -> dict[str, Any]:
    """The app's latest execution (provision or teardown): status, current state, result or error.

    Raises:
        AppNotFound: the app has no execution.
        AwsThrottled, PermanentError: Step Functions or DynamoDB refused (translated).
    """
    executions = list_app_executions(settings, app)
    if not executions:
        raise AppNotFound(f"app {app} has no provision or teardown execution")
    latest = executions[0]
    described = describe_execution(latest.arn)
    status = str(described["status"])
    error = closed_error(described, latest.kind)
    stop_date = described.get("stopDate")
    started_with = _parse_json(described.get("input"))
    return {
        "status": status,
        "kind": latest.kind,
        # Who asked: the API records its caller in the input; a console start's input is the request itself.
        "caller": started_with.get("caller", "console") if isinstance(started_with, dict) else "console",
        "executionArn": latest.arn,
        "executionName": latest.name,
        "startDate": latest.start_date.isoformat(),
        "stopDate": stop_date.isoformat() if stop_date else None,
        "currentState": execution_tail(latest.arn).current_state,
        "result": _parse_json(described.get("output")) if status == SUCCEEDED else None,
        "error": error,
    }
