"""Compensate: undo what the failed provision execution created, newest first; the Fail state reports the rest."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.compensate import compensate
from fargate_app.config import get_settings
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return compensate(get_settings(), event.get("state") or {}).to_json()
