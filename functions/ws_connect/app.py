"""WebSocket $connect: `?token=` must be valid with the route table's WebSocket scope, and the source IP under its
connection cap."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.api.routes import WEBSOCKET_SCOPE
from jobsync.domain.errors import JobsyncError
from jobsync.observability import logger
from jobsync.services.connections import connect


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayWebSocketEvent)
def lambda_handler(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request_context
    token = event.query_string_parameters.get("token")
    source_ip = request.identity.get("sourceIp") or "unknown"
    try:
        connect(request.connection_id, source_ip, token, WEBSOCKET_SCOPE)
    except JobsyncError as exc:
        # Any non-2xx answer makes API Gateway refuse the handshake.
        logger.info("connection refused", extra={"reason": exc.code, "source_ip": source_ip})
        return {"statusCode": exc.http_status, "body": exc.code}
    return {"statusCode": 200}
