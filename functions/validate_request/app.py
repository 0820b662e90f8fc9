"""ValidateRequest: the API's request model applied to any start (console, API, CLI) — same rules, same messages."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.observability import logger
from fargate_app.validation import validate_start


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return validate_start(get_settings(), event).to_json()
