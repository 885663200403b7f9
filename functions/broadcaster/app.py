"""DynamoDB stream of the jobs table → `job_status_changed` to every WebSocket client.

Also invoked asynchronously by itself (jobsync.background.hand_off) with `{"fan_out": {"messages",
"connections"}}`: a share of a fan-out too large for one invocation (services/broadcast.py)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.observability import logger, metrics
from jobsync.services.broadcast import broadcast, deliver_share, status_changes
from jobsync.store.dynamo import from_stream_image

# The event is read as the dict Lambda passes: Powertools' data classes would import every event source's
# class (their package's __init__: 20 ms of CPU at cold start, 7% of a boto3-only handler's) for a few keys.
# A removed item is no status change.
_WRITES = ("INSERT", "MODIFY")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    share = event.get("fan_out")
    if isinstance(share, dict):
        shared = deliver_share(share)
        return {"changes": 0, "sent": shared.sent, "gone": shared.gone, "failed": shared.failed}
    writes = [
        (from_stream_image(stream.get("NewImage") or {}), from_stream_image(stream.get("OldImage") or {}))
        for record in event.get("Records") or []
        if record.get("eventName") in _WRITES and (stream := record.get("dynamodb")) is not None
    ]
    report = broadcast(status_changes(writes))
    return {"changes": report.changes, "sent": report.sent, "gone": report.gone, "failed": report.failed}
