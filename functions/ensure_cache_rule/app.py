"""EnsureCacheRule: the walkthrough's console steps "Add rule" for the upstream, then ECR's validation of it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.aws.ecr import ensure_cache_rule
from fargate_app.config import get_settings
from fargate_app.models import EnsureCacheRuleEvent
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = EnsureCacheRuleEvent.parse(event, region=settings.region, account=settings.account_id)
    role_name = step.pod_execution_role.name if step.pod_execution_role else None
    return ensure_cache_rule(settings, step.request, role_name, holder=step.request.holder).to_json()
