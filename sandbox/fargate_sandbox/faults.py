"""Fault hooks: make a named AWS API, a registry path or a Kubernetes path misbehave exactly N times.

Each fault is armed with a count and consumed atomically under one lock, so N concurrent callers see exactly N faults
between them. The reliability tests arm them through ``Sandbox.faults``; the AWS front, the registry front and the
Kubernetes emulator (through ``take_kubernetes``) consult them on every request.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from fargate_sandbox.aws_protocol import AwsError, throttling_error


@dataclass
class _Armed:
    remaining: int
    fired: int = 0


@dataclass(frozen=True)
class RegistryFault:
    """A registry answer to inject: an HTTP status (5xx) or a hang of ``hang_seconds`` before the connection drops."""

    status: int | None = None
    hang_seconds: float | None = None


@dataclass(frozen=True)
class KubernetesFault:
    status: int
    reason: str = "InternalError"
    message: str = "injected fault"


@dataclass
class _PathFault:
    method: str | None
    path: re.Pattern[str]
    armed: _Armed
    fault: RegistryFault | KubernetesFault


@dataclass
class FaultInjector:
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _aws: dict[str, tuple[_Armed, AwsError | None]] = field(default_factory=dict)
    _registry: list[_PathFault] = field(default_factory=list)
    _kubernetes: list[_PathFault] = field(default_factory=list)

    # --- arming ---------------------------------------------------------------------------------------------------
    def throttle_aws(self, api: str, times: int) -> None:
        """Answer ``api`` ("eks:CreateFargateProfile") with the service's own throttling error ``times`` times."""
        self._arm_aws(api, times, None)

    def fail_aws(self, api: str, times: int, code: str, message: str, status: int = 400) -> None:
        """Answer ``api`` with the given AWS error ``times`` times."""
        self._arm_aws(api, times, AwsError(code, message, status))

    def fail_registry(self, path_regex: str, times: int, status: int = 503, method: str | None = None) -> None:
        """Answer registry requests whose path matches ``path_regex`` with ``status`` ``times`` times."""
        self._arm_path(self._registry, method, path_regex, times, RegistryFault(status=status))

    def hang_registry(self, path_regex: str, times: int, seconds: float, method: str | None = None) -> None:
        """Hold matching registry requests for ``seconds``, then drop the connection without an answer."""
        self._arm_path(self._registry, method, path_regex, times, RegistryFault(hang_seconds=seconds))

    def fail_kubernetes(
        self, path_regex: str, times: int, status: int, method: str | None = None, reason: str = "InternalError"
    ) -> None:
        """Answer matching Kubernetes API requests with ``status`` (409, 5xx…) ``times`` times."""
        fault = KubernetesFault(status=status, reason=reason)
        self._arm_path(self._kubernetes, method, path_regex, times, fault)

    def clear(self) -> None:
        with self._lock:
            self._aws.clear()
            self._registry.clear()
            self._kubernetes.clear()

    # --- consuming --------------------------------------------------------------------------------------------------
    def take_aws(self, service: str | None, operation: str | None) -> AwsError | None:
        """The error to answer instead of forwarding, consuming one shot; None when no fault is armed."""
        api = f"{service}:{operation}"
        with self._lock:
            entry = self._aws.get(api)
            if entry is None or entry[0].remaining <= 0:
                return None
            armed, error = entry
            armed.remaining -= 1
            armed.fired += 1
        return error or throttling_error(service)

    def take_registry(self, method: str, path: str) -> RegistryFault | None:
        fault = self._take_path(self._registry, method, path)
        assert fault is None or isinstance(fault, RegistryFault)
        return fault

    def take_kubernetes(self, method: str, path: str) -> KubernetesFault | None:
        """Hook for the Kubernetes emulator: call it per request; answer the returned fault instead of serving."""
        fault = self._take_path(self._kubernetes, method, path)
        assert fault is None or isinstance(fault, KubernetesFault)
        return fault

    def fired_aws(self, api: str) -> int:
        with self._lock:
            entry = self._aws.get(api)
            return entry[0].fired if entry else 0

    # --- internals ------------------------------------------------------------------------------------------------
    def _arm_aws(self, api: str, times: int, error: AwsError | None) -> None:
        if times < 1 or ":" not in api:
            raise ValueError(f"arm a fault as ('service:Operation', times >= 1), not ({api!r}, {times})")
        with self._lock:
            self._aws[api] = (_Armed(times), error)

    def _arm_path(
        self,
        faults: list[_PathFault],
        method: str | None,
        path_regex: str,
        times: int,
        fault: RegistryFault | KubernetesFault,
    ) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            faults.append(_PathFault(method.upper() if method else None, re.compile(path_regex), _Armed(times), fault))

    def _take_path(self, faults: list[_PathFault], method: str, path: str) -> RegistryFault | KubernetesFault | None:
        with self._lock:
            for entry in faults:
                if entry.armed.remaining <= 0 or (entry.method and entry.method != method.upper()):
                    continue
                if entry.path.search(path):
                    entry.armed.remaining -= 1
                    entry.armed.fired += 1
                    return entry.fault
        return None
