"""ValidateCacheRule: a new pull-through-cache rule (CloudTrail event) is validated and its watch list read."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.observability import logger
from fargate_app.watchlist import ValidateCacheRuleEvent, validate_cache_rule


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return validate_cache_rule(ValidateCacheRuleEvent.model_validate(event)).to_json()
