"""WebSocket $disconnect: forget the connection and free its slot."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.observability import logger
from jobsync.services.connections import disconnect


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayWebSocketEvent)
def lambda_handler(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    disconnect(event.request_context.connection_id)
    return {"statusCode": 200}
