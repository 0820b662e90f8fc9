"""ValidateRequest: the API's request model applied to any start (console, API, CLI) — same rules, same messages."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.models import parse_request
from fargate_app.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    return parse_request(event, region=settings.region, account=settings.account_id).to_json()
