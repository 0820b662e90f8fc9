"""AWS clients from one cached factory, so tests and the sandbox can point them anywhere.

They are botocore's clients, the very objects ``boto3.client()`` returns, made without importing boto3: its import
also loads s3transfer (S3's transfer manager, with multiprocessing and concurrent.futures), which no step uses and
every cold start would pay (docs/benchmarks.md, figure 1). botocore honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` and reads the region and credentials exactly as boto3 does; nothing here overrides
that. The SDK's ``standard`` retry mode retries throttling and transient errors with jittered exponential backoff
before a step gives up and lets the state machine retry the whole step.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

SDK_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
_lock = threading.Lock()


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def client(service: str) -> Any:
    """A cached client for ``service`` (botocore clients are thread-safe; sessions are not, hence the lock)."""
    with _lock:
        return _client(service)


@cache
def _client(service: str) -> Any:
    return _session().create_client(service, config=SDK_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests that change credentials or endpoints between cases)."""
    _client.cache_clear()
    _session.cache_clear()
