"""Compensate: undo what the failed provision execution created, newest first, and report the step's failure.

With ``compensationError`` (the state's retries of this function ran out), it only reports what is left behind."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.compensate import compensate
from fargate_app.config import get_settings
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event.get("state") or {}
    failed_before = None
    if event.get("reportOnly"):  # the state's retries of this function ran out: only report what is left
        error = state.get("compensationError")
        failed_before = str(error.get("Error")) if isinstance(error, dict) else "the compensation failed"
    return compensate(get_settings(), state, failed_before=failed_before).to_json()
