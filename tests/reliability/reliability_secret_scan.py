"""A pytest plugin that scans everything the test session captures for credentials.

Every test phase's captured stdout, stderr and log records (pytest puts them in ``report.sections``; production
handlers log JSON to stdout through Powertools) and the failure text are searched for:

- the ECR registry tokens the sandbox issued (``GetAuthorizationToken``: the base64 ``authorizationToken`` and the
  password inside it) — recorded as they are issued — and anything shaped like one (base64 of ``AWS:…``);
- the EKS bearer tokens the Kubernetes emulator received — recorded as they arrive — and any ``k8s-aws-v1.`` token
  or presigned-URL signature;
- the seeded upstream credentials (the secret values in Secrets Manager);
- AWS secret access keys: values registered with :func:`register` and the sandbox's/tests' fixed keys next to a
  secret-key name.

A phase whose output holds one fails, naming the kind of credential and the section (never the value). Capture must
be on (no ``-s``): with it off there is nothing to scan, and :func:`statistics` says so.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from fargate_sandbox.seeds import UPSTREAM_CREDENTIALS

PATTERNS: dict[str, re.Pattern[str]] = {
    "EKS bearer token": re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]{20,}"),
    "presigned STS URL signature (EKS token)": re.compile(r"X-Amz-Signature=[0-9a-fA-F]{64}"),
    "ECR authorization token": re.compile(r"QVdTO[A-Za-z0-9+/]{20,}={0,2}"),
    "AWS secret access key": re.compile(
        r"(?i)(?:aws_secret_access_key|secret_?access_?key|secretkey)[\"'\s:=,(]{1,6}(?:sandbox|testing)\b"
    ),
}
MIN_KNOWN_LENGTH = 8  # shorter values would match ordinary words


@dataclass
class ScanStatistics:
    phases_scanned: int = 0
    bytes_scanned: int = 0
    ecr_tokens_issued: int = 0
    eks_tokens_presented: int = 0
    secret_values: int = 0
    findings: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Every field, named in camelCase as the report reads it (``phasesScanned``…)."""
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name): value for name, value in asdict(self).items()}


_lock = threading.Lock()
_known: dict[str, str] = {}  # value → kind
_statistics = ScanStatistics()


def register(value: str, kind: str) -> None:
    """Scan for ``value`` from now on (a secret the test setup knows: a generated secret key…)."""
    if len(value) >= MIN_KNOWN_LENGTH:
        with _lock:
            _known[value] = kind


PLUGIN_NAME = "reliability-secret-scan"


def statistics() -> ScanStatistics:
    return _statistics


def find_credentials(text: str) -> list[str]:
    """The kinds of credential ``text`` holds (each once), known values first."""
    with _lock:
        known = list(_known.items())
    kinds = [kind for value, kind in known if value in text]
    kinds += [kind for kind, pattern in PATTERNS.items() if pattern.search(text)]
    return list(dict.fromkeys(kinds))


def _record_ecr_tokens(answer: dict[str, Any]) -> None:
    for data in answer.get("authorizationData", []):
        token = str(data.get("authorizationToken", ""))
        register(token, "ECR authorization token")
        _, _, password = base64.b64decode(token).decode().partition(":")
        register(password, "ECR registry password")
        with _lock:
            _statistics.ecr_tokens_issued += 1


def _instrument() -> Iterator[Callable[[], None]]:
    """Record the tokens the sandbox issues and receives; yields the functions that undo each wrapper."""
    from fargate_sandbox.ecr_rules import PullThroughCache
    from kube_emulator import auth as kube_auth

    issue = PullThroughCache._GetAuthorizationToken

    def issue_and_record(self: PullThroughCache, params: dict[str, Any], *caller: Any) -> dict[str, Any]:
        answer = issue(self, params, *caller)
        _record_ecr_tokens(answer)
        return answer

    PullThroughCache._GetAuthorizationToken = issue_and_record  # type: ignore[method-assign]
    yield lambda: setattr(PullThroughCache, "_GetAuthorizationToken", issue)

    decode = kube_auth.decode

    def decode_and_record(token: str) -> str | None:
        register(token, "EKS bearer token")
        with _lock:
            _statistics.eks_tokens_presented += 1
        return decode(token)

    kube_auth.decode = decode_and_record
    yield lambda: setattr(kube_auth, "decode", decode)


class SecretScanPlugin:
    """Registered once per process by tests/reliability/conftest.py; active for every test that runs after."""

    def __init__(self) -> None:
        for credentials in UPSTREAM_CREDENTIALS.values():
            register(credentials["accessToken"], "seeded upstream secret value")
        _statistics.secret_values = len(UPSTREAM_CREDENTIALS)
        self._undo = list(_instrument())

    def unregister(self) -> None:
        while self._undo:
            self._undo.pop()()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        texts = [(title, content) for title, content in report.sections if title.endswith(f" {report.when}")]
        if report.longrepr is not None:
            texts.append(("failure report", report.longreprtext))
        leaks = [(title, kind) for title, content in texts for kind in find_credentials(content)]
        with _lock:
            _statistics.phases_scanned += 1
            _statistics.bytes_scanned += sum(len(content) for _, content in texts)
            _statistics.findings += [{"test": item.nodeid, "section": t, "kind": k} for t, k in leaks]
        if leaks:
            report.outcome = "failed"
            where = "; ".join(f"{kind} in {title}" for title, kind in leaks)
            report.longrepr = f"credential leaked into the test output: {where} (values withheld)"
