"""Lambda ``Invoke`` answered by the real ``functions/<dir>/app.py`` handlers, each in its own execution environment.

An environment is a worker process (``lambda_runtime``) with the function's own variables and its role's
credentials, so the handler's calls are authorized as that role and module state never leaks between functions.
It runs one invocation at a time; a concurrent one gets a new environment (a cold start, whose init phase is not on
the function's clock: ``lambda_runtime.handler_deadline``), an idle one is reused and reclaimed after
``IDLE_SECONDS``. The answers are the Lambda Invoke API's, listed with their source in
docs/sandbox.md ("The workflow harness"); functions the template does not define are left to moto. Every invocation
is recorded (function, request id, duration, error type) for reports and benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import spawn
from typing import Any
from urllib.parse import unquote

from fargate_sandbox import lambda_runtime
from fargate_sandbox.aws_protocol import AwsError, AwsRequest, render_error
from fargate_sandbox.template_model import FunctionSpec, SandboxTemplate

Response = tuple[int, dict[str, str], bytes]
TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"
IDLE_SECONDS = 600.0  # an environment idle this long is reclaimed (Lambda keeps them warm for minutes, not hours)
STOP_JOIN_SECONDS = 2.0
WORKER_PREFIX = "lambda-"
# Imported once by the forkserver, before any worker forks from it: a cold start pays only for the function's code.
# Nothing here reads the environment at import (fargate_app's Logger does, so the package is not preloaded).
PRELOAD = [
    "fargate_sandbox.lambda_runtime",
    "fargate_sandbox.botocore_preload",
    "botocore.session",
    "botocore.client",
    "botocore.endpoint",
    "pydantic",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.event_handler",
    "urllib3",
    "yaml",
    "kubernetes.client",
    # The client loads its API classes (and their models) on first use: over a second per cold start otherwise.
    "kubernetes.client.api.core_v1_api",
    "kubernetes.client.api.apps_v1_api",
    "kubernetes.client.api.networking_v1_api",
    "kubernetes_validate",
]
_context_lock = threading.Lock()
_context: Any = None


def _worker_context() -> Any:
    """The forkserver context, its preload list set before the server first starts (it is started once per process)."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            # multiprocessing's own function, wrapped on purpose (typeshed types the module attribute as that def)
            spawn.get_preparation_data = _without_main_module(spawn.get_preparation_data)  # type: ignore[assignment]
            _context = context
        return _context


def _without_main_module(get_preparation_data: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """A multiprocessing child runs the parent's ``__main__`` again before its target (a script without a
    ``__name__`` guard would run twice); a Lambda worker's target is importable by name, so its children skip that."""

    def preparation_data(name: str) -> dict[str, Any]:
        data = get_preparation_data(name)
        if name.startswith(WORKER_PREFIX):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    return preparation_data


@dataclass(frozen=True)
class Invocation:
    function: str  # logical id
    request_id: str
    started_at: float  # time.time()
    duration_seconds: float
    error_type: str | None  # None on success
    cold_start: bool = False


class _Worker:
    """One execution environment: its process and the parent's end of its connection."""

    def __init__(self, function: FunctionSpec, environment: Mapping[str, str]) -> None:
        context = _worker_context()
        self.connection, child = context.Pipe()
        spec = lambda_runtime.WorkerSpec(  # plain str: the template loader's str subclasses do not pickle
            logical_id=str(function.logical_id),
            name=str(function.name),
            arn=str(function.arn),
            code_dir=str(function.code_dir),
            handler=str(function.handler),
            memory_mb=int(function.memory_mb),
            environment={str(key): str(value) for key, value in environment.items()},
        )
        self.process = context.Process(
            target=lambda_runtime.serve, args=(child, spec), name=f"{WORKER_PREFIX}{function.logical_id}", daemon=True
        )
        self.process.start()
        child.close()
        self.idle_since = time.monotonic()
        self.loaded = False  # the handler imported: no init phase is left to run
        self._close_lock = threading.Lock()
        self._closed = False

    def call(self, request_id: str, event: Any, timeout_seconds: float) -> tuple[bytes, str | None]:
        """Run one invocation; relays the handler's output to this process's streams as it comes.

        Raises:
            TimeoutError: no answer within ``timeout_seconds``.
            EOFError: the worker died.
        """
        self.connection.send(("invoke", request_id, event, timeout_seconds))
        received = time.monotonic()
        # Until the handler is loaded, the invocation may start with an init phase, off the function's clock.
        deadline = received + timeout_seconds + (0.0 if self.loaded else lambda_runtime.INIT_SECONDS)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.connection.poll(remaining):
                raise TimeoutError(request_id)
            message = self.connection.recv()
            if message[0] == "output":
                stream = sys.stdout if message[1] == "stdout" else sys.stderr
                stream.write(message[2])
                continue
            if message[0] == "initialized":
                self.loaded = message[2]
                deadline = lambda_runtime.handler_deadline(received, time.monotonic(), timeout_seconds)
                continue
            _, answered_id, payload, error_type = message
            if answered_id == request_id:
                return payload, error_type

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # already gone
            self.connection.send(("stop",))
        self.process.join(STOP_JOIN_SECONDS)
        self.kill()

    def kill(self) -> None:
        """End the process and close the connection, once: the dispatcher's ``stop`` and the invocation that was
        using the worker may both get here, and a second ``os.close`` of the descriptor would close whatever socket
        reused its number meanwhile (or fail with EBADF)."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_JOIN_SECONDS)
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.connection.close()


class LambdaDispatcher:
    def __init__(self, template: SandboxTemplate, environment_for: Callable[[FunctionSpec], Mapping[str, str]]) -> None:
        """
        Args:
            template: the functions that may be invoked.
            environment_for: the whole environment a function's execution environments get (its variables, what
                Lambda adds, its role's credentials).
        """
        self.template = template
        self.environment_for = environment_for
        self.invocations: list[Invocation] = []
        self._idle: dict[str, list[_Worker]] = {}
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._stopped = False

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
            thread = threading.Thread(target=self.invoke, args=(function, event), daemon=True)
            thread.start()
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
        """Run the handler in an execution environment of the function: (request id, payload, error type or None)."""
        request_id = str(uuid.uuid4())
        started_at, started = time.time(), time.monotonic()
        worker, cold = self._acquire(function)
        keep = True
        try:
            payload, error_type = worker.call(request_id, event, function.timeout_seconds)
        except TimeoutError:
            keep = False
            error_type = TIMEOUT_ERROR_TYPE
            payload = json.dumps(
                {
                    "errorType": TIMEOUT_ERROR_TYPE,
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                    f"{function.timeout_seconds:.2f} seconds",
                }
            ).encode()
        except (EOFError, OSError):
            keep = False
            error_type = "Runtime.ExitError"
            payload = json.dumps(
                {
                    "errorType": error_type,
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited without providing a reason",
                }
            ).encode()
        finally:
            self._release(function, worker, keep)
        self._record(
            Invocation(function.logical_id, request_id, started_at, time.monotonic() - started, error_type, cold)
        )
        return request_id, payload, error_type

    def _acquire(self, function: FunctionSpec) -> tuple[_Worker, bool]:
        """An idle environment of the function (warm), else a new one (cold); idle ones past IDLE_SECONDS go."""
        expired: list[_Worker] = []
        with self._lock:
            if self._stopped:
                raise RuntimeError("the Lambda dispatcher is stopped")
            idle = self._idle.setdefault(function.logical_id, [])
            now = time.monotonic()
            expired = [worker for worker in idle if now - worker.idle_since > IDLE_SECONDS]
            idle[:] = [worker for worker in idle if worker not in expired]
            worker = idle.pop() if idle else None
            if worker is not None:
                self._busy.add(worker)
        for old in expired:
            old.stop()
        if worker is not None:
            if worker.process.is_alive():
                return worker, False
            with self._lock:
                self._busy.discard(worker)
        fresh = _Worker(function, self.environment_for(function))
        with self._lock:
            self._busy.add(fresh)
        return fresh, True

    def _release(self, function: FunctionSpec, worker: _Worker, keep: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if keep and not self._stopped:
                worker.idle_since = time.monotonic()
                self._idle.setdefault(function.logical_id, []).append(worker)
                return
        worker.kill()

    # --- bookkeeping ------------------------------------------------------------------------------------------------
    def _record(self, invocation: Invocation) -> None:
        with self._record_lock:
            self.invocations.append(invocation)

    def invocations_of(self, logical_id: str) -> list[Invocation]:
        with self._record_lock:
            return [invocation for invocation in self.invocations if invocation.function == logical_id]

    def environments(self) -> int:
        """Execution environments alive now (idle and busy)."""
        with self._lock:
            return len(self._busy) + sum(len(workers) for workers in self._idle.values())

    def recycle(self, logical_id: str | None = None) -> None:
        """End the idle execution environments of a function (every function when None), as a deployment of it
        does: its next invocations start cold (module state, cached clients and tokens are gone)."""
        with self._lock:
            chosen = [logical_id] if logical_id is not None else list(self._idle)
            idle = [worker for name in chosen for worker in self._idle.pop(name, [])]
        for worker in idle:
            worker.stop()

    def stop(self) -> list[str]:
        """Stop every execution environment; the names of the functions whose invocations were still running."""
        with self._lock:
            self._stopped = True
            idle = [worker for workers in self._idle.values() for worker in workers]
            busy = list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for worker in idle:
            worker.stop()
        for worker in busy:
            worker.kill()
        return [worker.process.name for worker in busy]
