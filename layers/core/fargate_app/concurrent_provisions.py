"""The other provisions of this stack that may use what a failed provision created: it must not delete it under them.

A failed provision deletes the cache rule and the Fargate profile it created, unless something else uses them. A
provision that started a moment later and reused them may not have applied its objects yet, so the cluster does not
show it (``kube/usage.py`` sees only applied apps); a cache rule serves every cluster of the account, so no cluster
shows all its users. Step Functions does: such a provision is RUNNING, or SUCCEEDED after this one started, and its
input holds its request, which says which rule it reuses (the same prefix, or without one any rule for its upstream)
and whether the profile's selectors place its pods.

Calls: DescribeExecution (this one's start), ListExecutions RUNNING and SUCCEEDED (newest first, until they started
``LOOKBACK`` before this one), then DescribeExecution for each execution found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from fargate_app.aws.clients import client
from fargate_app.aws.eks import profile_matches
from fargate_app.aws.errors import aws_errors
from fargate_app.aws.stepfunctions import describe_execution
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.errors import InvalidRequest
from fargate_app.models import MANAGED_BY_LABEL, CacheRule, FargateProfile, ProvisionRequest, parse_request_for
from fargate_app.validation import is_api_input

# Longer than a provision can take to reach EnsureCacheRule after it started (the profile wait is 20 minutes): an
# execution that started earlier than this before ours cannot have reused what ours created.
LOOKBACK = timedelta(hours=2)


@dataclass(frozen=True)
class ConcurrentProvision:
    name: str  # the execution's name
    request: ProvisionRequest

    def may_use_rule(self, rule: CacheRule) -> bool:
        """EnsureCacheRule reuses a rule of the request's prefix, or without one any rule for its upstream."""
        if self.request.effective_cache_prefix == rule.ecr_repository_prefix:
            return True
        upstream = self.request.image_reference.upstream
        return (
            self.request.cache_prefix is None
            and upstream is not None
            and upstream.registry_url == rule.upstream_registry_url
        )

    def may_use_profile(self, profile: FargateProfile) -> bool:
        """The profile's selectors place the request's pods (they carry the managed-by label too)."""
        if self.request.cluster != profile.cluster:
            return False
        labels = {**self.request.pod_labels, MANAGED_BY_LABEL: MANAGED_BY}
        selectors = [selector.to_json() for selector in profile.selectors]
        return profile_matches({"selectors": selectors}, self.request.namespace, labels)


def state_machine_of(execution_arn: str) -> str | None:
    """``arn:…:execution:<machine>:<name>`` → ``arn:…:stateMachine:<machine>``; None for anything else."""
    head, separator, _ = execution_arn.rpartition(":")
    if not separator or ":execution:" not in head:
        return None
    return head.replace(":execution:", ":stateMachine:", 1)


def concurrent_provisions(settings: Settings, execution_arn: str) -> list[ConcurrentProvision]:
    """The other executions of this execution's state machine that are RUNNING, or SUCCEEDED after it started,
    whose input is a valid request (one that ValidateRequest refuses uses nothing).

    Raises:
        AwsThrottled, PermanentError: Step Functions refused (translated); compensation retries or reports it.
    """
    machine = state_machine_of(execution_arn)
    started = _start_of(execution_arn) if machine else None
    if machine is None or started is None:
        return []
    arns = _running(machine, execution_arn) + _succeeded_since(machine, started)
    found = []
    for arn in arns:
        request = _request_of(settings, (describe_execution(arn) or {}).get("input"))
        if request is not None:
            found.append(ConcurrentProvision(arn.rsplit(":", 1)[-1], request))
    return found


def _start_of(execution_arn: str) -> datetime | None:
    """When this execution started; None when Step Functions does not know it (nothing can share with it)."""
    start = (describe_execution(execution_arn) or {}).get("startDate")
    return start if isinstance(start, datetime) else None


def _running(machine: str, own: str) -> list[str]:
    arns: list[str] = []
    # absent: a state machine that is gone runs nothing
    with aws_errors(f"list the running executions of {machine}", absent={"StateMachineDoesNotExist"}):
        pages = client("stepfunctions").get_paginator("list_executions")
        for page in pages.paginate(stateMachineArn=machine, statusFilter="RUNNING"):
            arns.extend(e["executionArn"] for e in page.get("executions", []) if e["executionArn"] != own)
    return arns


def _succeeded_since(machine: str, started: datetime) -> list[str]:
    """Executions that succeeded after ``started``, read newest first until they started LOOKBACK before it."""
    arns: list[str] = []
    with aws_errors(f"list the succeeded executions of {machine}", absent={"StateMachineDoesNotExist"}):
        pages = client("stepfunctions").get_paginator("list_executions")
        for page in pages.paginate(stateMachineArn=machine, statusFilter="SUCCEEDED"):
            executions = page.get("executions", [])
            arns.extend(e["executionArn"] for e in executions if e.get("stopDate") and e["stopDate"] >= started)
            if any(e["startDate"] < started - LOOKBACK for e in executions):
                break
    return arns


def _request_of(settings: Settings, execution_input: str | None) -> ProvisionRequest | None:
    """The request of an execution's input: the console's is the request, the API's ``{"request", "caller", …}``."""
    try:
        document = json.loads(execution_input or "null")
    except ValueError:
        return None
    if is_api_input(document):
        document = document["request"]
    try:
        return parse_request_for(settings, document)
    except InvalidRequest:
        return None
