"""EventBridge for the sandbox: CloudTrail-shaped "AWS API Call via CloudTrail" events, matched and delivered.

Sources (cited in docs/sandbox.md): EventBridge user guide, "Events from AWS services delivered via AWS CloudTrail"
(envelope ``detail-type`` "AWS API Call via CloudTrail", ``source`` "aws.<service>", the CloudTrail record as
``detail``); CloudTrail user guide, "CloudTrail record contents" (eventVersion, userIdentity, eventTime, eventSource,
eventName, awsRegion, requestParameters, responseElements, requestID, eventID, eventType, recipientAccountId…).
Patterns are matched with moto's implementation of EventBridge's pattern language (``moto.events.models.EventPattern``:
prefix, anything-but, numeric, exists…), the same code moto uses for ``PutEvents``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern


def _matches(pattern: EventPattern, event: dict[str, Any]) -> bool:
    return pattern.matches_event(event)  # type: ignore[arg-type]  # moto types events as a TypedDict


Target = Callable[[dict[str, Any]], None]


@dataclass
class _Rule:
    name: str
    pattern: EventPattern
    target: Target


@dataclass
class Delivery:
    rule: str
    event: dict[str, Any]
    error: str | None = None


def cloudtrail_event(
    *,
    service: str,
    event_name: str,
    account_id: str,
    region: str,
    request_parameters: dict[str, Any],
    response_elements: dict[str, Any],
    access_key_id: str = "",
    user_agent: str = "",
) -> dict[str, Any]:
    """The EventBridge event CloudTrail emits for a successful management API call."""
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{service}",
        "account": account_id,
        "time": stamp,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": access_key_id,
                "arn": f"arn:aws:iam::{account_id}:user/sandbox",
                "accountId": account_id,
                "accessKeyId": access_key_id,
                "userName": "sandbox",
            },
            "eventTime": stamp,
            "eventSource": f"{service}.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": user_agent,
            "requestParameters": request_parameters,
            "responseElements": response_elements,
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account_id,
            "eventCategory": "Management",
        },
    }


@dataclass
class EventRouter:
    """The default event bus: rules with an EventPattern and a target; deliveries are recorded for inspection."""

    _rules: list[_Rule] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _on_the_way: int = 0
    _delivered: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def on_the_way(self) -> Iterator[None]:
        """An event between the answer of the API call that emitted it and the end of its delivery: the caller has its
        answer before the event's targets ran (EventBridge delivers asynchronously), ``wait_delivered`` waits."""
        with self._delivered:
            self._on_the_way += 1
        try:
            yield
        finally:
            with self._delivered:
                self._on_the_way -= 1
                self._delivered.notify_all()

    def wait_delivered(self, timeout_s: float) -> bool:
        """Whether every event on its way was delivered within ``timeout_s``."""
        with self._delivered:
            return self._delivered.wait_for(lambda: self._on_the_way == 0, timeout=timeout_s)

    def add_rule(self, name: str, event_pattern: dict[str, Any] | str, target: Target) -> None:
        """Register a rule; ``event_pattern`` is the rule's EventPattern (as in template.yaml). Invalid ones raise."""
        raw = event_pattern if isinstance(event_pattern, str) else json.dumps(event_pattern)
        with self._lock:
            self._rules.append(_Rule(name, EventPattern.load(raw), target))

    def matching_rules(self, event: dict[str, Any]) -> list[str]:
        with self._lock:
            return [rule.name for rule in self._rules if _matches(rule.pattern, event)]

    def deliver(self, event: dict[str, Any]) -> list[Delivery]:
        """Hand the event to every matching rule's target. A failing target is recorded, never raised: EventBridge
        delivers asynchronously, so a target's failure cannot fail the API call that emitted the event."""
        with self._lock:
            rules = [rule for rule in self._rules if _matches(rule.pattern, event)]
        delivered = []
        for rule in rules:
            delivery = Delivery(rule.name, event)
            try:
                rule.target(event)
            except Exception as exc:  # recorded for tests and logs; EventBridge would retry then drop
                delivery.error = f"{type(exc).__name__}: {exc}"
            delivered.append(delivery)
        with self._lock:
            self.deliveries.extend(delivered)
        return delivered
