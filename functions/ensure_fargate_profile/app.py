"""EnsureFargateProfile: the walkthrough's "Create a Fargate profile for your cluster", reusing a matching one."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.aws.eks import ensure_fargate_profile
from fargate_app.config import get_settings
from fargate_app.models import EnsureProfileEvent
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = EnsureProfileEvent.parse(event, region=settings.region, account=settings.account_id)
    profile = ensure_fargate_profile(
        settings, step.request, step.pod_execution_role.arn, step.execution_arn, holder=step.request.holder
    )
    return profile.to_json()
