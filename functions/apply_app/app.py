"""ApplyApp: the walkthrough's ``kubectl create namespace`` and ``kubectl apply -f deployment.yaml``, server-side."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.kube.models import ApplyAppEvent
from fargate_app.kube.steps import apply_app
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = ApplyAppEvent.parse(event, region=settings.region, account=settings.account_id)
    return apply_app(settings, step).to_json()
