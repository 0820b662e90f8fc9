"""WarmImageCache: the walkthrough's first `docker pull` through the private registry, done before the Deployment.

Two callers: the provision workflow (the request and its cache rule) and the warm-cache workflow (one image of the
watch list under a new rule's prefix).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.observability import logger
from fargate_app.registry import WarmImageCacheEvent, warm_image_cache
from fargate_app.watchlist import WatchedImage


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "watched" in event:
        watched = WatchedImage.model_validate(event["watched"])
        return warm_image_cache(watched.image, watched.cache_prefix, watched.platform).to_json()
    settings = get_settings()
    step = WarmImageCacheEvent.parse(event, region=settings.region, account=settings.account_id)
    return warm_image_cache(step.request.image, step.cache_rule.ecr_repository_prefix, step.request.platform).to_json()
