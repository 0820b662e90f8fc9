"""CheckPodsGone: one poll after DeleteApp, until the app's pods (and so their Fargate nodes) are gone."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.kube.models import CheckPodsGoneEvent
from fargate_app.kube.steps import check_pods_gone
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = CheckPodsGoneEvent.parse(event, region=settings.region, account=settings.account_id)
    return check_pods_gone(settings, step).to_json()
