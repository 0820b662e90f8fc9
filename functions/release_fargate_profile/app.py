"""ReleaseFargateProfile: delete the app's Fargate profile if this app's provision created it and no other
managed app's pods still match it (the walkthrough's clean-up, made safe for shared profiles)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.observability import logger
from fargate_app.teardown import ReleaseProfileEvent, release_fargate_profile


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = ReleaseProfileEvent.parse(event, region=settings.region, account=settings.account_id)
    return release_fargate_profile(settings, step).to_json()
