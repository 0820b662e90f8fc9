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
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fargate_app.aws.clients import client
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.stepfunctions import describe_execution
from fargate_app.config import Settings
from fargate_app.errors import FargateAppError, Misconfigured, truncate
from fargate_app.inventory import (
    app_key,
    canonical_json,
    last_good_result,
    last_good_revision,
    note_started,
    read_item,
)
from fargate_app.models import ProvisionRequest
from fargate_app.observability import logger

MAX_NAME = 80
# Budget of an 80-character name: readable(40) "-" app-hash(8) ["-teardown"] "-" request-hash(16) ["-" attempt(≤3)].
READABLE_MAX = 40
MAX_ATTEMPTS = 999
# How far Step Functions' clock may be ahead of ours before a start date "before we asked" could be a new start's.
CLOCK_SKEW = timedelta(seconds=1)
MAX_CAUSE = 2000

Kind = Literal["provision", "teardown"]
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
GONE = "GONE"  # the status of an execution Step Functions no longer knows (its 90 days are over)
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


@dataclass(frozen=True)
class NewestExecution:
    """The app's newest execution as the app's item knows it, its status settled with Step Functions while the item
    says it runs (a stopped, timed-out or refused execution never records its end)."""

    arn: str
    kind: Kind
    status: str
    start_date: datetime | None
    stop_date: datetime | None

    @property
    def name(self) -> str:
        return self.arn.rsplit(":", 1)[-1]


def newest_execution(item: dict[str, Any]) -> NewestExecution | None:
    """The execution the API started last while it has not recorded itself (its start removes the note), else the
    one the item records; None for an app without any. One DescribeExecution, only while the item says it runs.

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    pending = item.get("pendingExecution")
    if pending and pending != item.get("executionArn"):
        arn, kind, status = str(pending), item.get("pendingKind"), RUNNING
        started, stopped = _when(item.get("pendingStart")), None
    elif item.get("executionArn"):
        arn, kind, status = str(item["executionArn"]), item.get("kind"), str(item.get("executionStatus") or RUNNING)
        started, stopped = _when(item.get("startDate")), _when(item.get("stopDate"))
    else:
        return None
    if status == RUNNING:  # or it ended without recording it; one Step Functions no longer knows does not run
        described = describe_execution(arn) or {"status": GONE}
        status, stopped = str(described["status"]), described.get("stopDate")
    return NewestExecution(arn, "teardown" if kind == "teardown" else "provision", status, started, stopped)


def _when(text: Any) -> datetime | None:
    """A date the item keeps (ISO 8601, as Step Functions or the API wrote it)."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _start_or_replay(
    settings: Settings,
    app: AppRef,
    kind: Kind,
    base: str,
    input_document: dict[str, Any],
    newest: NewestExecution | None,
) -> StartedExecution:
    """Start ``base`` (or its next attempt), or return the app's newest execution when this call replays it.

    A replay gets the same execution while it runs, and after it succeeded as long as nothing newer happened to the
    app (a provision's success only within REPLAY_WINDOW_SECONDS of its end: later, the same request re-applies the
    app). A failed execution, one superseded by a later execution for the app, or a provision's success past that
    window is followed by a new attempt (``base-2``…): its name is taken for 90 days, and the caller clearly wants
    the work done again.

    Raises:
        ExecutionConflict: another execution for the app is running, the name is taken by a running execution of
            another input, or the request has had its MAX_ATTEMPTS attempts.
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    attempt = 1
    if newest is not None:
        own = attempt_of(newest.name, base) if newest.kind == kind else None
        if newest.status == RUNNING and own is None:
            raise ExecutionConflict(
                f"app {app} has a running {newest.kind} execution {newest.name} for another request; "
                f"wait until it finishes (GET {app.status_url}), then send the request again",
                newest.arn,
            )
        if own is not None:
            if newest.status == RUNNING or _answers_a_replay(settings, newest):
                return StartedExecution(newest.arn, newest.name, newest.status, kind, True, newest.start_date)
            attempt = own + 1
    return _start_attempt(settings, app, kind, base, attempt, input_document, newest.arn if newest else "")


def _start_attempt(
    settings: Settings,
    app: AppRef,
    kind: Kind,
    base: str,
    attempt: int,
    input_document: dict[str, Any],
    last_arn: str,
) -> StartedExecution:
    """Start attempt ``attempt`` of ``base``; a name taken by a closed execution (an attempt the item no longer
    names: other executions of the app came between) is passed over for the next one.

    Raises:
        ExecutionConflict: a running execution of another input has the name, or MAX_ATTEMPTS are used up.
        AwsThrottled, PermanentError: Step Functions refused (translated).
    """
    machine = state_machine(settings, kind)
    body = canonical_json(input_document)
    sfn = client("stepfunctions")
    for number in range(attempt, MAX_ATTEMPTS + 1):
        name = attempt_name(base, number)
        assert len(name) <= MAX_NAME, name
        asked = datetime.now(UTC)
        with aws_errors(f"start {kind} execution {name}", absent={"ExecutionAlreadyExists"}):
            started = sfn.start_execution(stateMachineArn=machine, name=name, input=body)
            start_date = started.get("startDate")
            # The same name and input while it runs returns the running execution, start date included (API
            # reference, StartExecution): one that started before we asked was not started by this call.
            replayed = isinstance(start_date, datetime) and start_date < asked - CLOCK_SKEW
            if not replayed:
                logger.info("execution started", extra={"execution_arn": started["executionArn"], "kind": kind})
            return StartedExecution(started["executionArn"], name, RUNNING, kind, replayed, start_date)
        existing = describe_execution(execution_arn(machine, name))
        last_arn = str(existing["executionArn"]) if existing else execution_arn(machine, name)
        if existing is None or existing["status"] != RUNNING:
            continue
        # Another call with the same name started it between our read and our start.
        if _without_caller(_parse_json(existing.get("input"))) != _without_caller(input_document):
            raise ExecutionConflict(
                f"execution name {name} is taken by an execution with another input; change the request", last_arn
            )
        return StartedExecution(last_arn, name, RUNNING, kind, True, existing.get("startDate"))
    # the caller's to change (409 with the last attempt), not Step Functions' (502)
    raise ExecutionConflict(f"app {app}: {MAX_ATTEMPTS} attempts of this request already; change the request", last_arn)


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


def _answers_a_replay(settings: Settings, execution: NewestExecution) -> bool:
    """The app's newest execution, finished, still answers its request: it succeeded and, for a provision, ended
    within REPLAY_WINDOW_SECONDS (a client's retry; later, the request re-applies the app)."""
    if execution.status != SUCCEEDED:
        return False
    if execution.kind != "provision" or execution.stop_date is None:
        return True
    return (datetime.now(UTC) - execution.stop_date).total_seconds() <= settings.replay_window_seconds


def start_provision(settings: Settings, request: ProvisionRequest, caller: str) -> StartedExecution:
    """Start (or replay) the provision execution for a validated request, recording ``caller`` (the IAM principal
    API Gateway authorized) in its input. Costs one GetItem, plus a DescribeExecution while the app's newest
    execution may run, whatever the length of the app's history (ValidateRequest reads the last good revision a
    failed update applies again from the same item).

    Raises:
        ExecutionConflict: an execution for another request of the app, or its teardown, is running.
        AwsThrottled, PermanentError: Step Functions or DynamoDB refused (translated).
    """
    app = AppRef(request.cluster, request.namespace, request.app)
    document = request.to_json()
    item = read_item(settings, app_key(app.cluster, app.namespace, app.app)) or {}
    base = provision_base_name(app, document)
    execution_input = {"request": document, "caller": caller}
    started = _start_or_replay(settings, app, "provision", base, execution_input, newest_execution(item))
    return _noted(settings, app, started, caller)


def start_teardown(settings: Settings, app: AppRef, caller: str) -> StartedExecution:
    """Start (or replay) the teardown of what the app runs: its last good revision's request and what that
    provision returned, else (no provision of it succeeded) the latest request it recorded. A DELETE while a
    teardown runs, or once one succeeded and nothing happened to the app since, is that teardown.

    Raises:
        AppNotFound: no provision of the app ever recorded itself (nothing of it can exist).
        ExecutionConflict: a provision for the app is running.
        AwsThrottled, PermanentError: Step Functions or DynamoDB refused (translated).
    """
    item = read_item(settings, app_key(app.cluster, app.namespace, app.app)) or {}
    newest = newest_execution(item)
    if newest is not None and newest.kind == "teardown" and newest.status in (RUNNING, SUCCEEDED):
        replayed = StartedExecution(newest.arn, newest.name, newest.status, "teardown", True, newest.start_date)
        return _noted(settings, app, replayed, caller)
    if newest is not None and newest.status == RUNNING:
        raise ExecutionConflict(
            f"app {app} is being provisioned by {newest.name}; wait until it finishes (GET {app.status_url}), "
            "then delete it",
            newest.arn,
        )
    last_good = last_good_revision(item)
    request = last_good["request"] if last_good else _parse_json(item.get("requestJson"))
    if not isinstance(request, dict):
        raise AppNotFound(f"app {app} was never provisioned: nothing to tear down")
    document = {"request": request, "provision": last_good_result(item) if last_good else None}
    base = teardown_base_name(app, document, f"revision-{item.get('revision', 0)}")
    started = _start_or_replay(settings, app, "teardown", base, {**document, "caller": caller}, newest)
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
