"""DynamoDB stream of the jobs table → one message on the notification topic per job that ended or crossed
the cost threshold, exactly once, whatever wrote the change.

Reports partial batch failures: Lambda retries from the first record it could not publish (the ones before
it are done and stay done; a replayed record publishes nothing more).
"""

import time
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.observability import logger, metrics
from jobsync.services.notifier import StreamChange, notify
from jobsync.store.dynamo import from_dynamo

_WRITES = (DynamoDBRecordEventName.INSERT, DynamoDBRecordEventName.MODIFY)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    changes = []
    for record in event.records:
        stream = record.dynamodb
        if record.event_name not in _WRITES or stream is None or stream.sequence_number is None:
            continue
        changes.append(
            StreamChange(
                record_id=stream.sequence_number,
                new=from_dynamo(stream.new_image),
                old=from_dynamo(stream.old_image),
                at=_written_at(stream.raw_event.get("ApproximateCreationDateTime")),
            )
        )
    with invocation_deadline(context):
        report = notify(changes)
    failures = [{"itemIdentifier": report.failed_record}] if report.failed_record else []
    return {"batchItemFailures": failures, "published": report.published, "duplicates": report.already_published}


def _written_at(stamp: object) -> datetime:
    """When the change was written: epoch seconds from Lambda; a datetime from boto3 (the local stack's reader)."""
    if isinstance(stamp, datetime):
        return stamp.astimezone(timezone.utc)
    if isinstance(stamp, (int, float)):
        return datetime.fromtimestamp(stamp, timezone.utc)
    return datetime.fromtimestamp(time.time(), timezone.utc)
