"""boto3 clients from one cached factory, so tests and the sandbox can point them anywhere.

boto3 itself honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``; nothing here overrides that. The SDK's
``standard`` retry mode retries throttling and transient errors with jittered exponential backoff before a step gives
up and lets the state machine retry the whole step.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

SDK_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
_lock = threading.Lock()


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str) -> Any:
    """A cached client for ``service`` (boto3 clients are thread-safe; sessions are not, hence the lock)."""
    with _lock:
        return _client(service)


@cache
def _client(service: str) -> Any:
    return _session().client(service, config=SDK_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that change credentials or endpoints between cases)."""
    _client.cache_clear()
    _session.cache_clear()
