"""EnsurePodExecutionRole: the walkthrough's "Create a Fargate Pod Execution Role"."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.aws.iam import ensure_pod_execution_role
from fargate_app.config import get_settings
from fargate_app.models import EnsureRoleEvent
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = EnsureRoleEvent.parse(event, region=settings.region, account=settings.account_id)
    role = ensure_pod_execution_role(
        settings,
        step.request.cluster,
        step.request.effective_cache_prefix,
        step.execution_arn,
        holder=step.request.holder,
    )
    return role.to_json()
