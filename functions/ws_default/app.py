"""WebSocket $default: clients only listen; a `ping` is answered with a `pong` so they can check the line."""

import json

from jobsync.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    try:
        action = json.loads(event.get("body") or "{}").get("action")
    except (ValueError, AttributeError):
        action = None
    if action == "ping":
        # Returned bodies reach the client because the route has a route response.
        return {"statusCode": 200, "body": json.dumps({"type": "pong"})}
    return {
        "statusCode": 400,
        "body": json.dumps({"type": "error", "message": 'clients only listen; send {"action": "ping"}'}),
    }
