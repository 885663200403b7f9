"""WebSocket $disconnect: forget the connection and free its slot."""

from jobsync.observability import logger
from jobsync.services.connections import disconnect


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    disconnect(event["requestContext"]["connectionId"])
    return {"statusCode": 200}
