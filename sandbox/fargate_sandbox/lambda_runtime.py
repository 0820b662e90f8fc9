"""One Lambda execution environment: a worker process that runs one function's handler, one invocation at a time.

Started by ``lambda_dispatch`` (from a forkserver that has the heavy third-party modules imported already), it takes
the function's own environment — its variables, its role's credentials — as Lambda gives them, puts the function's
folder first on ``sys.path`` (Lambda's task root), and imports the handler at its first invocation (the init phase).
Messages on the connection, parent → worker: ``("invoke", request_id, event, timeout_seconds)`` and ``("stop",)``;
worker → parent: ``("output", stream, text)`` for what the handler prints or logs, ``("initialized", request_id,
loaded)`` after an init phase, then ``("result", request_id, payload, error_type)``. A worker never outlives its
parent: its connection closing ends it.

The init phase is not on the function's clock: Lambda gives it 10 s of its own, and an init that takes longer is run
again inside the invocation, under the function's timeout (developer guide, "Understanding the Lambda execution
environment lifecycle", Init phase). ``handler_deadline`` is that rule; both ends of the connection use it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INIT_SECONDS = 10.0  # Lambda's limit on an init phase that does not count against the function's timeout


def handler_deadline(received: float, initialized: float, timeout_seconds: float) -> float:
    """When the handler's time is up (``time.monotonic()`` values): its timeout from the end of an init phase that
    took at most ``INIT_SECONDS``; a longer init is retried within the invocation, so it shares the timeout (the first
    ``INIT_SECONDS`` are lost to it). Without an init phase, ``initialized`` is ``received``."""
    if initialized - received <= INIT_SECONDS:
        return initialized + timeout_seconds
    return received + INIT_SECONDS + timeout_seconds


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to become the function's execution environment (picklable)."""

    logical_id: str
    name: str
    arn: str
    code_dir: str
    handler: str  # "<module>.<function>"
    memory_mb: int
    environment: Mapping[str, str]


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools read."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(self, spec: WorkerSpec, request_id: str, deadline: float) -> None:
        self.function_name = spec.name
        self.memory_limit_in_mb = spec.memory_mb
        self.invoked_function_arn = spec.arn
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"sandbox/[$LATEST]{request_id.replace('-', '')}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _Relay:
    """A text stream whose writes go to the parent, which prints them where its own output goes (a test's capture,
    the CLI's terminal): the handler's logs stay visible, and scanned, wherever the parent's are."""

    def __init__(self, connection: Any, stream: str, lock: threading.Lock) -> None:
        self._connection = connection
        self._stream = stream
        self._lock = lock

    def write(self, text: str) -> int:
        if text:
            with self._lock:
                self._connection.send(("output", self._stream, text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class _HandlerFailed(Exception):
    def __init__(self, error_type: str, message: str, stack: list[str]) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack


def serve(connection: Any, spec: WorkerSpec) -> None:
    """The worker's whole life: become the function's environment, then answer invocations until told to stop."""
    os.environ.clear()
    os.environ.update(spec.environment)
    lock = threading.Lock()
    sys.stdout = _Relay(connection, "stdout", lock)
    sys.stderr = _Relay(connection, "stderr", lock)
    sys.path.insert(0, spec.code_dir)
    handler: Any = None
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, request_id, event, timeout_seconds = message
        received = time.monotonic()
        try:
            if handler is None:
                try:
                    handler = _load(spec)
                finally:
                    with lock:
                        connection.send(("initialized", request_id, handler is not None))
            deadline = handler_deadline(received, time.monotonic(), timeout_seconds)
            payload = _run(handler, event, LambdaContext(spec, request_id, deadline))
            answer: tuple[str, str, bytes, str | None] = ("result", request_id, payload, None)
        except _HandlerFailed as failure:
            document = {
                "errorMessage": str(failure),
                "errorType": failure.error_type,
                "requestId": request_id,
                "stackTrace": failure.stack,
            }
            answer = ("result", request_id, json.dumps(document).encode(), failure.error_type)
        with lock:
            connection.send(answer)


def _load(spec: WorkerSpec) -> Any:
    """Import the handler module (Lambda's init phase); a failure is reported, and tried again next time."""
    module_name, _, attribute = spec.handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _HandlerFailed(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", []
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise _HandlerFailed("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'", [])
    return handler


def _run(handler: Any, event: Any, context: LambdaContext) -> bytes:
    try:
        result = handler(event, context)
    except Exception as exc:  # the runtime reports any exception of the handler to the caller
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])  # without this frame
        raise _HandlerFailed(type(exc).__name__, str(exc), stack) from exc
    try:
        return json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        raise _HandlerFailed("Runtime.MarshalError", f"Unable to marshal response: {exc}", []) from exc
