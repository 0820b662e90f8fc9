"""ValidateRequest: the API's request model applied to any start (console, API, CLI) — same rules, same messages."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.models import parse_request
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Event: {"request": <the execution's input>, "executionArn"}; the input is the request itself (console) or
    {"request": ...} (the API). Returns the state the provision workflow carries: the normalised request and the ARN."""
    settings = get_settings()
    raw = event.get("request")
    if isinstance(raw, dict) and set(raw) == {"request"}:  # a v1 request has no field named "request"
        raw = raw["request"]
    request = parse_request(raw, region=settings.region, account=settings.account_id)
    return {"request": request.to_json(), "executionArn": event.get("executionArn", "")}
