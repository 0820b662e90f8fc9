"""CheckFargateProfile: one poll of a profile being created (until ACTIVE) or deleted (until gone)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.aws.eks import check_fargate_profile
from fargate_app.config import get_settings
from fargate_app.models import CheckProfileEvent
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = CheckProfileEvent.model_validate(event)
    return check_fargate_profile(get_settings(), step.profile, step.expect).to_json()
