"""WebSocket $default: `ping` (answered `pong`), `follow` and `unfollow` a job's log lines.

After `{"action": "follow", "job_id": ...}` the connection receives
`{"type": "job_log_lines", "job_id", "lines": [...]}` whenever a read of that job's
logs finds new lines. Answers go back through the route response.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.domain.errors import JobsyncError
from jobsync.observability import logger
from jobsync.services.log_follow import follow, unfollow

_USAGE = 'send {"action": "ping"}, {"action": "follow", "job_id": ...} or {"action": "unfollow", "job_id": ...}'


def _answer(status: int, message: dict[str, Any]) -> dict[str, Any]:
    # Returned bodies reach the client because the route has a route response.
    return {"statusCode": status, "body": json.dumps(message)}


# The event is read as the dict Lambda passes: Powertools' data classes would import every event source's
# class (their package's __init__: 20 ms of CPU at cold start, 7% of a boto3-only handler's) for a few keys.
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        message = json.loads(event.get("body") or "{}")
    except ValueError:
        message = None
    if not isinstance(message, dict):
        return _answer(400, {"type": "error", "error": "invalid_input", "message": _USAGE})
    action = message.get("action")
    if action == "ping":
        return _answer(200, {"type": "pong"})
    if action not in ("follow", "unfollow"):
        return _answer(400, {"type": "error", "error": "invalid_input", "message": _USAGE})
    connection_id = event["requestContext"]["connectionId"]
    try:
        if action == "follow":
            job_id = follow(connection_id, message.get("job_id"))
            return _answer(200, {"type": "following", "job_id": job_id})
        job_id = unfollow(connection_id, message.get("job_id"))
        return _answer(200, {"type": "unfollowed", "job_id": job_id})
    except JobsyncError as exc:
        return _answer(exc.http_status, {"type": "error", "error": exc.code, "message": str(exc)})
