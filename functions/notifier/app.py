"""DynamoDB stream of the jobs table → one message on the notification topic per job that ended or crossed
the cost threshold, exactly once, whatever wrote the change.

Reports partial batch failures: Lambda retries from the first record it could not publish (the ones before
it are done and stay done; a replayed record publishes nothing more).
"""

import time
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.observability import logger, metrics
from jobsync.services.notifier import StreamChange, notify
from jobsync.store.dynamo import from_stream_image

# The event is read as the dict Lambda passes: Powertools' data classes would import every event source's
# class (their package's __init__: 20 ms of CPU at cold start, 7% of a boto3-only handler's) for a few keys.
_WRITES = ("INSERT", "MODIFY")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    changes = []
    for record in event.get("Records") or []:
        stream = record.get("dynamodb")
        if record.get("eventName") not in _WRITES or stream is None or stream.get("SequenceNumber") is None:
            continue
        changes.append(
            StreamChange(
                record_id=stream["SequenceNumber"],
                new=from_stream_image(stream.get("NewImage") or {}),
                old=from_stream_image(stream.get("OldImage") or {}),
                at=_written_at(stream.get("ApproximateCreationDateTime")),
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
