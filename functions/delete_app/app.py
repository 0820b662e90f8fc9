"""DeleteApp: the walkthrough's clean-up, ``kubectl delete`` of the app's Ingress, Service and Deployment."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.kube.steps import delete_app
from fargate_app.models import RequestEvent
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    request = RequestEvent.parse(event, region=settings.region, account=settings.account_id).request
    return delete_app(settings, request).to_json()
