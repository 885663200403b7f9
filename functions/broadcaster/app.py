"""DynamoDB stream of the jobs table → `job_status_changed` to every WebSocket client.

Also invoked asynchronously by itself (jobsync.background.hand_off) with `{"fan_out": {"messages",
"connections"}}`: a share of a fan-out too large for one invocation (services/broadcast.py)."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.observability import logger, metrics
from jobsync.services.broadcast import broadcast, deliver_share, status_changes

# A removed item is no status change.
_WRITES = (DynamoDBRecordEventName.INSERT, DynamoDBRecordEventName.MODIFY)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    share = event.raw_event.get("fan_out")
    if isinstance(share, dict):
        shared = deliver_share(share)
        return {"changes": 0, "sent": shared.sent, "gone": shared.gone, "failed": shared.failed}
    writes = [
        (record.dynamodb.new_image, record.dynamodb.old_image)
        for record in event.records
        if record.event_name in _WRITES and record.dynamodb is not None
    ]
    report = broadcast(status_changes(writes))
    return {"changes": report.changes, "sent": report.sent, "gone": report.gone, "failed": report.failed}
