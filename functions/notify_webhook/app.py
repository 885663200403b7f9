"""Invoked asynchronously by the notifier (jobsync.background.hand_off): POSTs one notification to the
configured incoming-webhook URL (Slack's or any), trying again with a growing wait.

Raises when every try failed: Lambda retries the invocation twice, then sends the event to the
dead-letter queue (template.yaml's EventInvokeConfig).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.observability import logger, metrics
from jobsync.services.webhook_delivery import deliver


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        logger.warning("hand-off without an event id: nothing to deliver")
        return {"outcome": "no event id"}
    with invocation_deadline(context):
        return {"event_id": event_id, "outcome": deliver(event_id)}
