"""Step ValidateRequest: the request model applied to every start (console, API, CLI) — same rules, same messages."""

from __future__ import annotations

from typing import Any

from fargate_app.config import Settings
from fargate_app.models import ApiModel, ProvisionRequest, parse_request


class ValidatedRequest(ApiModel):
    """The state the provision workflow carries from here on: the normalised request and the execution's ARN."""

    request: ProvisionRequest
    execution_arn: str


def validate_start(settings: Settings, event: dict[str, Any]) -> ValidatedRequest:
    """Event: ``{"request": <the execution's input>, "executionArn"}``; the input is the request itself (console) or
    ``{"request": ...}`` (the API).

    Raises:
        InvalidRequest: naming every field that breaks a rule, and the rule.
    """
    raw = event.get("request")
    if isinstance(raw, dict) and set(raw) == {"request"}:  # a v1 request has no field named "request"
        raw = raw["request"]
    request = parse_request(raw, region=settings.region, account=settings.account_id)
    return ValidatedRequest(request=request, execution_arn=str(event.get("executionArn", "")))
