"""CheckRollout: one ``kubectl get pods -o wide`` — ready when every pod is Running on a fargate- node; "not yet" is
RolloutNotYetReady, which the state's Retry turns into the poll."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from fargate_app.config import get_settings
from fargate_app.kube.models import CheckRolloutEvent
from fargate_app.kube.steps import check_rollout
from fargate_app.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    step = CheckRolloutEvent.parse(event, region=settings.region, account=settings.account_id)
    return check_rollout(settings, step).to_json()
