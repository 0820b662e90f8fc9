"""Step Functions' error semantics where moto's interpreter is more lenient than AWS, put right for the harness.

AWS (developer guide, "Handling errors in Step Functions workflows"): ``States.Runtime`` is never retried or caught,
``States.ALL`` included; a path that does not resolve is such an error wherever a state reads it; a failed Lambda
``Invoke`` is ``Lambda.<exception>``. moto 5.x hands a failed ``Parameters``/``ResultSelector``/``ItemsPath`` path
to the Task's or Map's Retry and Catch, lets ``States.ALL`` catch ``States.Runtime``, sends a Choice whose variable
is missing to its Default, names every Lambda service error ``Exception`` and a DynamoDB error its API does not model
by its bare code (AWS: the SDK's base class, ``DynamoDB.AmazonDynamoDBException``), and gives
``$$.Execution.StartTime`` as a Python datetime where AWS gives an ISO 8601 string (developer guide, "Accessing execution data from the Context
object": ``"StartTime": "2019-03-26T20:14:13.192Z"``), which no service integration can send, and shows an ended
execution's status before its output or error is set, and passes an AWS SDK integration's parameters and result in
the casing they come in where AWS maps them between PascalCase and the service's. ``install`` replaces exactly those behaviours; everything else
is moto's. AWS's causes, word for word, and the known gaps: docs/sandbox.md.
It also parses each definition once instead of once per execution (``_parsed_once``), which changes no behaviour.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

RUNTIME = "States.Runtime"
_PARSER = "moto.stepfunctions.parser"
Replace = Callable[[Any, str, Any], None]


def _module(name: str) -> Any:
    return importlib.import_module(f"{_PARSER}.{name}")


def install(replace: Replace) -> None:
    """Apply the corrections with ``replace(owner, attribute, value)`` (the caller undoes them)."""
    execute_state = _module("asl.component.state.exec.execute_state")
    state_task_lambda = _module("asl.component.state.exec.state_task.state_task_lambda")
    comparison_variable = _module("asl.component.state.choice.comparison.comparison_variable")
    items_path = _module("asl.component.common.path.items_path")
    payload_binding = _module("asl.component.common.payload.payloadvalue.payloadbinding.payload_binding")
    result_path = _module("asl.component.common.path.result_path")
    state = execute_state.ExecutionState  # Task, Map and Parallel: each one's _eval_state asks these two
    replace(state, "_handle_retry", _no_retry_for_runtime_errors(state._handle_retry))
    replace(state, "_handle_catch", _no_catch_for_runtime_errors(state._handle_catch))
    replace(payload_binding.PayloadBindingStringExpressionSimple, "_eval_val", _binding_path_must_resolve)
    replace(result_path.ResultPath, "_eval_body", _result_path_must_apply(result_path.ResultPath._eval_body))
    replace(
        state_task_lambda.StateTaskLambda,
        "_from_error",
        _with_lambda_service_error_names(state_task_lambda.StateTaskLambda._from_error),
    )
    dynamodb = _module("asl.component.state.exec.state_task.service.state_task_service_dynamodb")
    service = dynamodb.StateTaskServiceDynamoDB
    replace(service, "_from_error", _with_dynamodb_exception_names(service._from_error))
    replace(comparison_variable.ComparisonVariable, "_eval_body", _choice_variable_must_resolve)
    replace(items_path.ItemsPath, "_eval_body", _items_path_must_resolve)
    worker = _module("backend.execution_worker").ExecutionWorker
    replace(worker, "_get_evaluation_environment", _start_time_as_text(worker._get_evaluation_environment))
    replace(worker, "_get_evaluation_entrypoint", _parsed_once(worker._get_evaluation_entrypoint))
    communication = _module("backend.execution").BaseExecutionWorkerCommunication
    replace(communication, "_reflect_execution_status", _status_last(communication._reflect_execution_status))
    aws_sdk = _module("asl.component.state.exec.state_task.service.state_task_service_aws_sdk").StateTaskServiceAwsSdk
    replace(aws_sdk, "_eval_service_task", _sdk_results_in_sfn_case(aws_sdk._eval_service_task))


def _sdk_results_in_sfn_case(evaluate: Callable[..., None]) -> Callable[..., None]:
    """An AWS SDK integration takes its parameters and gives its result's members in PascalCase, whatever the
    service's own casing: ``arn:aws:states:::aws-sdk:sfn:describeExecution`` takes ``ExecutionArn`` and gives
    ``Status`` (developer guide, "AWS SDK service integrations": parameters are PascalCase "even if the native service
    API is in camelCase"). LocalStack, whose interpreter moto's is, maps both ways (``StateTaskService._to_boto_request``
    and ``_from_boto_response``, held to AWS by its recorded snapshots); moto 5.2's SDK task passes both on as they
    are, so boto3 gets ``ExecutionArn`` and the state machine ``status``."""

    @functools.wraps(evaluate)
    def in_sfn_case(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        import botocore.session

        action = self.resource.api_action
        model = botocore.session.get_session().get_service_model(self._get_boto_service_name())
        operation = model.operation_model(action[:1].upper() + action[1:])
        parameters = kwargs.get("normalised_parameters")
        if isinstance(parameters, dict) and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)
        evaluate(self, env, *args, **kwargs)
        response = env.stack[-1]
        if isinstance(response, dict) and operation.output_shape is not None:
            self._from_boto_response(response, operation.output_shape)

    return in_sfn_case


def _parsed_once(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The program of each definition, parsed by its first execution and shared by the later ones.

    moto parses the ASL with ANTLR at every execution's start: a tenth of the sandbox's CPU when twenty executions
    start at once (py-spy on the twenty-app reliability test). Sharing is safe because a parsed program is a tree of
    components that evaluation does not change: what an execution accumulates (its input, retry counts, Map
    iterations) lives in its own ``Environment``, keyed by each component's ``heap_key``. That key is drawn lazily on
    first use, so it is drawn here, before any execution can race another to draw it twice.
    """
    programs: dict[str, Any] = {}
    lock = threading.Lock()

    @functools.wraps(parse)
    def shared(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            if definition not in programs:
                program = parse(self)
                _draw_heap_keys(program)
                programs[definition] = program
            return programs[definition]

    return shared


def _draw_heap_keys(program: Any) -> None:
    """Draw the ``heap_key`` of every evaluable component of ``program`` (reached through attributes, lists, dicts)."""
    component = _module("asl.component.component").Component
    evaluable = _module("asl.component.eval_component").EvalComponent
    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, evaluable):
            _ = node.heap_key
        children = vars(node).values() if isinstance(node, component) else node
        for child in children:
            if isinstance(child, component | list | tuple):
                pending.append(child)
            elif isinstance(child, dict):
                pending.extend(child.values())


def _start_time_as_text(environment: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``$$.Execution.StartTime`` as AWS writes it: UTC, milliseconds, a ``Z``."""

    @functools.wraps(environment)
    def with_text(self: Any) -> Any:
        env = environment(self)
        execution = env.states.context_object.context_object_data["Execution"]
        started = execution.get("StartTime")
        if isinstance(started, datetime):
            utc = started.astimezone(UTC) if started.tzinfo else started.replace(tzinfo=UTC)
            execution["StartTime"] = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        return env

    return with_text


def _status_last(reflect: Callable[[Any], None]) -> Callable[[Any], None]:
    """An ended execution's status, published only once its output (or error and cause) and stop date are in place.

    AWS's DescribeExecution never answers SUCCEEDED without the output, or FAILED without the error (API reference,
    DescribeExecution: ``output`` "is available only if the execution succeeded"; ``error``/``cause`` of a failed
    one). moto sets ``exec_status`` first and the output on the next line, so a reader on another thread can see a
    SUCCEEDED execution with no output, as the API once did under load. The outcome is read as moto reads it.
    """
    program_state = _module("asl.eval.program_state")
    status = _module("api").ExecutionStatus

    @functools.wraps(reflect)
    def outcome_then_status(self: Any) -> None:
        execution = self.execution
        ended = execution.exec_worker.env.program_state()
        if isinstance(ended, program_state.ProgramEnded):
            execution.output, closed = execution.exec_worker.env.states.get_input(), status.SUCCEEDED
        elif isinstance(ended, program_state.ProgramStopped):
            closed = status.ABORTED
        elif isinstance(ended, program_state.ProgramError):
            execution.error, execution.cause = ended.error.get("error"), ended.error.get("cause")
            closed = status.FAILED
        elif isinstance(ended, program_state.ProgramTimedOut):
            closed = status.TIMED_OUT
        else:
            reflect(self)  # moto's own answer to a state it does not know
            return
        execution.stop_date = datetime.now(tz=UTC)
        execution.exec_status = closed

    return outcome_then_status


def _runtime_failure(env: Any, cause: str, *, execution_level: bool = False) -> Exception:
    """The FailureEventException moto raises for a ``States.Runtime`` error (its own shape, so its program reports
    the execution's error and cause as AWS does: "An error occurred while executing the state 'X' …")."""
    api = _module("api")
    failure = _module("asl.component.common.error_name.failure_event")
    names = _module("asl.component.common.error_name.states_error_name")
    types = _module("asl.component.common.error_name.states_error_name_type")
    details_module = _module("asl.eval.event.event_detail")
    if execution_level:
        event_type = api.HistoryEventType.ExecutionFailed
        details = details_module.EventDetails(
            executionFailedEventDetails=api.ExecutionFailedEventDetails(error=RUNTIME, cause=cause)
        )
    else:
        event_type = api.HistoryEventType.TaskFailed
        details = details_module.EventDetails(
            taskFailedEventDetails=api.TaskFailedEventDetails(error=RUNTIME, cause=cause)
        )
    return failure.FailureEventException(  # type: ignore[no-any-return]
        failure_event=failure.FailureEvent(
            env=env,
            error_name=names.StatesErrorName(typ=types.StatesErrorNameType.StatesRuntime),
            event_type=event_type,
            event_details=details,
        )
    )


def _is_runtime(failure_event: Any) -> bool:
    return getattr(failure_event.error_name, "error_name", None) == RUNTIME


def _no_retry_for_runtime_errors(retry: Callable[[Any, Any, Any], Any]) -> Callable[..., Any]:
    def handle_retry(self: Any, env: Any, failure_event: Any) -> Any:
        if _is_runtime(failure_event):
            return _module("asl.component.common.retry.retry_outcome").RetryOutcome.CannotRetry
        return retry(self, env, failure_event)

    return handle_retry


def _no_catch_for_runtime_errors(catch: Callable[[Any, Any, Any], None]) -> Callable[..., None]:
    def handle_catch(self: Any, env: Any, failure_event: Any) -> None:
        if _is_runtime(failure_event):
            env.stack.append(_module("asl.component.common.catch.catch_outcome").CatchOutcome.NotCaught)
            return
        catch(self, env, failure_event)

    return handle_catch


def _result_path_must_apply(apply: Callable[[Any, Any], None]) -> Callable[..., None]:
    def apply_result_path(self: Any, env: Any) -> None:
        try:
            apply(self, env)
        except (TypeError, KeyError, IndexError, AttributeError) as exc:
            encoding = _module("asl.utils.encoding")
            raise _runtime_failure(
                env,
                f"Unable to apply ResultPath '{self.result_path_src}' to input "
                f"'{encoding.to_json_str(env.states.get_input())}'",
            ) from exc

    return apply_result_path


@functools.cache
def _modelled_errors(service: str, operation: str | None = None) -> frozenset[str]:
    """The error codes ``service``'s model names: those of ``operation``, or of the whole service."""
    from fargate_sandbox.aws_protocol import service_model

    model = service_model(service)
    shapes = model.operation_model(operation).error_shapes if operation else model.error_shapes
    return frozenset(shape.name for shape in shapes)


def lambda_error_name(exc: Exception) -> str:
    """The error name Step Functions reports when Lambda's ``Invoke`` call fails (not the function)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return f"Lambda.{code}" if code in _modelled_errors("lambda", "Invoke") else "Lambda.AWSLambdaException"
    return "Lambda.SdkClientException"


def _with_lambda_service_error_names(from_error: Callable[[Any, Any, Exception], Any]) -> Callable[..., Any]:
    def from_error_with_service_names(self: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError | BotoCoreError):
            return from_error(self, env, ex)
        api = _module("api")
        failure = _module("asl.component.common.error_name.failure_event")
        custom = _module("asl.component.common.error_name.custom_error_name")
        details_module = _module("asl.eval.event.event_detail")
        name = lambda_error_name(ex)
        cause = ex.response["Error"].get("Message", "") if isinstance(ex, ClientError) else str(ex)
        return failure.FailureEvent(
            env=env,
            error_name=custom.CustomErrorName(name),
            event_type=api.HistoryEventType.LambdaFunctionFailed,
            event_details=details_module.EventDetails(
                lambdaFunctionFailedEventDetails=api.LambdaFunctionFailedEventDetails(error=name, cause=cause)
            ),
        )

    return from_error_with_service_names


def dynamodb_error_name(exc: ClientError) -> str:
    """The error name Step Functions' DynamoDB integration reports for a failed call: ``DynamoDB.<code>`` when the
    DynamoDB API models the code, else the SDK's base exception ``DynamoDB.AmazonDynamoDBException`` (developer guide,
    "Handling errors": an optimized integration's errors are the service's exception names), as for Lambda above."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return f"DynamoDB.{code}" if code in _modelled_errors("dynamodb") else "DynamoDB.AmazonDynamoDBException"


def _with_dynamodb_exception_names(from_error: Callable[[Any, Any, Exception], Any]) -> Callable[..., Any]:
    def from_error_with_exception_names(self: Any, env: Any, ex: Exception) -> Any:
        event = from_error(self, env, ex)
        if not isinstance(ex, ClientError):
            return event
        failure = _module("asl.component.common.error_name.failure_event")
        custom = _module("asl.component.common.error_name.custom_error_name")
        details = dict(event.event_details["taskFailedEventDetails"])
        details["error"] = dynamodb_error_name(ex)
        return failure.FailureEvent(
            env=env,
            error_name=custom.CustomErrorName(details["error"]),
            event_type=event.event_type,
            event_details={"taskFailedEventDetails": details},
        )

    return from_error_with_exception_names


def _choice_variable_must_resolve(self: Any, env: Any) -> None:
    variable_module = _module("asl.component.state.choice.comparison.variable")
    operator_types = _module("asl.component.state.choice.comparison.comparison_operator_type")
    self.variable.eval(env)
    if (
        isinstance(env.stack[-1], variable_module.NoSuchVariable)
        and self.comparison_function.operator_type != operator_types.ComparisonOperatorType.IsPresent
    ):
        path = self.variable.string_sampler.literal_value
        raise _runtime_failure(
            env,
            f"Invalid path '{path}': The choice state's condition path references an invalid value.",
            execution_level=True,
        )
    self.comparison_function.eval(env)


def _binding_path_must_resolve(self: Any, env: Any) -> Any:
    """A ``"field.$": "$.path"`` of Parameters or ResultSelector: a path that does not resolve is States.Runtime."""
    json_path = _module("asl.utils.json_path")
    encoding = _module("asl.utils.encoding")
    try:
        self.string_expression_simple.eval(env=env)
    except json_path.NoSuchJsonPathError as exc:
        raise _runtime_failure(
            env,
            f"The JSONPath '{exc.json_path}' specified for the field '{self.field}.$' could not be found in the input "
            f"'{encoding.to_json_str(exc.data)}'",
        ) from exc
    return env.stack.pop()


def _items_path_must_resolve(self: Any, env: Any) -> None:
    json_path = _module("asl.utils.json_path")
    try:
        self.string_sampler.eval(env=env)
    except json_path.NoSuchJsonPathError as exc:
        path = exc.json_path
        raise _runtime_failure(env, f"Invalid path '{path}' : No results for path: $['{path[2:]}']") from exc
