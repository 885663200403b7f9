"""WebSocket $default: clients only listen; a `ping` is answered with a `pong` so they can check the line."""

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.observability import logger


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayWebSocketEvent)
def lambda_handler(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    try:
        action = json.loads(event.body or "{}").get("action")
    except (ValueError, AttributeError):
        action = None
    if action == "ping":
        # Returned bodies reach the client because the route has a route response.
        return {"statusCode": 200, "body": json.dumps({"type": "pong"})}
    return {
        "statusCode": 400,
        "body": json.dumps({"type": "error", "message": 'clients only listen; send {"action": "ping"}'}),
    }
