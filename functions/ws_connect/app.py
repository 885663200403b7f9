"""WebSocket $connect: `?token=` must be valid and the source IP under its connection cap."""

from jobsync.domain.errors import JobsyncError
from jobsync.observability import logger
from jobsync.services.connections import connect


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    request = event.get("requestContext") or {}
    token = (event.get("queryStringParameters") or {}).get("token")
    source_ip = (request.get("identity") or {}).get("sourceIp") or "unknown"
    try:
        connect(request["connectionId"], source_ip, token)
    except JobsyncError as exc:
        # Any non-2xx answer makes API Gateway refuse the handshake.
        logger.info("connection refused", extra={"reason": exc.code, "source_ip": source_ip})
        return {"statusCode": exc.http_status, "body": exc.code}
    return {"statusCode": 200}
