"""Lambda ``Invoke`` answered in process by the real ``functions/<dir>/app.py`` handlers (design.md §6).

The AWS front hands every ``lambda:Invoke`` request to ``LambdaDispatcher.intercept``; for a function of the template
it imports the handler module once (under a unique module name: every function folder has an ``app.py``), calls it in
a worker thread with a Lambda-shaped context, and answers as the Lambda Invoke API does (API reference, "Invoke"):

- success: 200, the handler's return value as JSON, ``X-Amz-Executed-Version: $LATEST``;
- the handler raises: 200 with ``X-Amz-Function-Error: Unhandled`` and the Python runtime's error document
  ``{"errorMessage", "errorType", "requestId", "stackTrace"}``: Step Functions names the error after ``errorType``,
  so ``ErrorEquals: ["ProfileOperationInProgress"]`` matches our exception classes exactly as in AWS;
- the handler runs past the function's ``Timeout``: the same 200 + ``Unhandled``, with the document current Lambda
  runtimes (python3.12 included) return, ``{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: <id> Error:
  Task timed out after <n>.00 seconds"}``. Step Functions therefore reports ``Sandbox.Timedout``; ASL that must
  survive a timeout matches it, ``States.TaskFailed`` or ``States.ALL``. (The Step Functions guide, "Handle Lambda
  service exceptions", still says timeouts surface as ``Lambda.Unknown``: that was the older runtimes' error document
  without ``errorType``; match both.) Python cannot kill a thread: a timed-out handler keeps running in its daemon
  thread until it returns, its result discarded — unlike Lambda, which freezes the sandbox;
- ``X-Amz-Invocation-Type: Event`` → 202 and the handler runs in the background; ``DryRun`` → 204;
- a body that is not JSON → 400 ``InvalidRequestContentException``; an import failure → ``Runtime.ImportModuleError``,
  a missing handler → ``Runtime.HandlerNotFound``, a result that is not JSON → ``Runtime.MarshalError``.

Functions the template does not define are left to moto (``ResourceNotFoundException`` as in AWS).
Every invocation is recorded (function, request id, duration, error type) for reports and benchmarks.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from fargate_sandbox.aws_protocol import AwsError, AwsRequest, render_error
from fargate_sandbox.template_model import FunctionSpec, SandboxTemplate

Response = tuple[int, dict[str, str], bytes]
TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"
STOP_JOIN_SECONDS = 2.0


@dataclass(frozen=True)
class Invocation:
    function: str  # logical id
    request_id: str
    started_at: float  # time.time()
    duration_seconds: float
    error_type: str | None  # None on success


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools read."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(self, function: FunctionSpec, request_id: str, deadline: float) -> None:
        self.function_name = function.name
        self.memory_limit_in_mb = function.memory_mb
        self.invoked_function_arn = function.arn
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"sandbox/[$LATEST]{request_id.replace('-', '')}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _HandlerFailed(Exception):
    def __init__(self, error_type: str, message: str, stack: list[str]) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack


class LambdaDispatcher:
    def __init__(self, template: SandboxTemplate) -> None:
        self.template = template
        self.invocations: list[Invocation] = []
        self._modules: dict[str, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    # --- the AWS front's hook ---------------------------------------------------------------------------------------
    def intercept(self, request: AwsRequest) -> Response | None:
        """The answer to a ``lambda:Invoke`` of a template function; ``None`` lets the front forward to moto."""
        if request.service != "lambda" or request.operation != "Invoke":
            return None
        function = self.template.function_named(unquote(request.path_params.get("FunctionName", "")))
        if function is None:
            return None
        try:
            event = json.loads(request.body) if request.body else {}
        except ValueError as exc:
            message = f"Could not parse request body into json: {exc}"
            return render_error("lambda", AwsError("InvalidRequestContentException", message, 400))
        invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type == "DryRun":
            return 204, {"x-amzn-RequestId": str(uuid.uuid4())}, b""
        if invocation_type == "Event":
            self._start_worker(lambda: self.invoke(function, event), f"lambda-event-{function.logical_id}")
            return 202, {"x-amzn-RequestId": str(uuid.uuid4())}, b""
        request_id, payload, error_type = self.invoke(function, event)
        headers = {
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
            "X-Amz-Executed-Version": "$LATEST",
        }
        if error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, payload

    # --- one invocation ---------------------------------------------------------------------------------------------
    def invoke(self, function: FunctionSpec, event: Any) -> tuple[str, bytes, str | None]:
        """Run the handler with the function's timeout: (request id, response payload, error type or None)."""
        request_id = str(uuid.uuid4())
        started_at, started = time.time(), time.monotonic()
        deadline = started + function.timeout_seconds
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                outcome["payload"] = self._call(function, event, LambdaContext(function, request_id, deadline))
            except _HandlerFailed as exc:
                outcome["error"] = exc
            finally:
                finished.set()

        self._start_worker(run, f"lambda-{function.logical_id}-{request_id[:8]}")
        if not finished.wait(function.timeout_seconds):
            error_type = TIMEOUT_ERROR_TYPE
            payload = json.dumps(
                {
                    "errorType": TIMEOUT_ERROR_TYPE,
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                    f"{function.timeout_seconds:.2f} seconds",
                }
            ).encode()
        elif "error" in outcome:
            failure: _HandlerFailed = outcome["error"]
            error_type = failure.error_type
            payload = json.dumps(
                {
                    "errorMessage": str(failure),
                    "errorType": failure.error_type,
                    "requestId": request_id,
                    "stackTrace": failure.stack,
                }
            ).encode()
        else:
            error_type, payload = None, outcome["payload"]
        self._record(Invocation(function.logical_id, request_id, started_at, time.monotonic() - started, error_type))
        return request_id, payload, error_type

    def _call(self, function: FunctionSpec, event: Any, context: LambdaContext) -> bytes:
        handler = self._handler(function)
        try:
            result = handler(event, context)
        except Exception as exc:  # the runtime reports any exception of the handler to the caller
            stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])  # without this frame
            raise _HandlerFailed(type(exc).__name__, str(exc), stack) from exc
        try:
            return json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            raise _HandlerFailed("Runtime.MarshalError", f"Unable to marshal response: {exc}", []) from exc

    def _handler(self, function: FunctionSpec) -> Callable[[Any, Any], Any]:
        module_name, _, attribute = function.handler.rpartition(".")
        module = self._module(function, module_name)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise _HandlerFailed(
                "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'", []
            )
        return handler  # type: ignore[no-any-return]

    def _module(self, function: FunctionSpec, module_name: str) -> ModuleType:
        """Import the handler module once per function (Lambda's cold start); a failed import is retried next time,
        as Lambda retries the init phase of a fresh sandbox."""
        with self._import_lock:
            if function.logical_id in self._modules:
                return self._modules[function.logical_id]
            path = function.code_dir / (module_name.replace(".", "/") + ".py")
            unique_name = f"sandbox_lambda_{function.logical_id}_{module_name.replace('.', '_')}"
            try:
                spec = importlib.util.spec_from_file_location(unique_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"No module named '{module_name}'")
                module = importlib.util.module_from_spec(spec)
                sys.modules[unique_name] = module
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(unique_name, None)
                raise _HandlerFailed(
                    "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", []
                ) from exc
            self._modules[function.logical_id] = module
            return module

    # --- bookkeeping ------------------------------------------------------------------------------------------------
    def _record(self, invocation: Invocation) -> None:
        with self._record_lock:
            self.invocations.append(invocation)

    def invocations_of(self, logical_id: str) -> list[Invocation]:
        with self._record_lock:
            return [invocation for invocation in self.invocations if invocation.function == logical_id]

    def _start_worker(self, target: Callable[[], Any], name: str) -> None:
        # Daemon: a handler past its timeout cannot be killed, and must not keep the interpreter alive at exit.
        worker = threading.Thread(target=target, name=name, daemon=True)
        with self._record_lock:
            self._workers = [thread for thread in self._workers if thread.is_alive()]
            self._workers.append(worker)
        worker.start()

    def stop(self) -> list[str]:
        """Give running handlers a moment to finish; the names of those still running (timed out, stuck)."""
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        with self._record_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for module_name in [name for name in sys.modules if name.startswith("sandbox_lambda_")]:
            if any(module is sys.modules[module_name] for module in self._modules.values()):
                del sys.modules[module_name]
        self._modules.clear()
        return [worker.name for worker in workers if worker.is_alive()]
