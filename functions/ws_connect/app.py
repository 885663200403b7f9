"""WebSocket $connect: `?token=` must be valid with the route table's WebSocket scope, and the source IP under its
connection cap."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.api.routes import WEBSOCKET_SCOPE
from jobsync.domain.errors import JobsyncError
from jobsync.observability import logger
from jobsync.services.connections import connect


# The event is read as the dict Lambda passes: Powertools' data classes would import every event source's
# class (their package's __init__: 20 ms of CPU at cold start, 7% of a boto3-only handler's) for a few keys.
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    token = (event.get("queryStringParameters") or {}).get("token")
    source_ip = (request.get("identity") or {}).get("sourceIp") or "unknown"
    try:
        connect(request["connectionId"], source_ip, token, WEBSOCKET_SCOPE)
    except JobsyncError as exc:
        # Any non-2xx answer makes API Gateway refuse the handshake.
        logger.info("connection refused", extra={"reason": exc.code, "source_ip": source_ip})
        return {"statusCode": exc.http_status, "body": exc.code}
    return {"statusCode": 200}
