"""WarmImageCache: the walkthrough's first `docker pull` through the private registry, done before the Deployment."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.observability import logger, tracer
from fargate_app.registry import WarmImageCacheEvent, warm_image_cache


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = WarmImageCacheEvent.parse(event, region=settings.region, account=settings.account_id)
    return warm_image_cache(step.request.image, step.cache_rule.ecr_repository_prefix, step.request.platform).to_json()
