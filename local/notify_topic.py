"""The notification topic for the local stack: SNS's Publish, answered in-process.

The notifier publishes with boto3 as it does in AWS; the stack points
`AWS_ENDPOINT_URL_SNS` at this server (the local DynamoDB server is
DynamoDB-only). Each message is printed to the stack's log, one line, and kept
in memory for tests; there are no subscriptions: the webhook channel
(`JOBSYNC_NOTIFY_WEBHOOK_URL`) is served by the notify_webhook function, as in AWS.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger("local.notifications")

TOPIC_NAME = "jobsync-notifications"
_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"


def topic_arn(region: str, account: str = "000000000000") -> str:
    return f"arn:aws:sns:{region}:{account}:{TOPIC_NAME}"


class LocalTopic:
    """What was published, in order (thread-safe)."""

    def __init__(self, arn: str) -> None:
        self.arn = arn
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def publish(self, message: str, subject: str | None, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        with self._lock:
            self._messages.append(
                {"message_id": message_id, "message": message, "subject": subject, "attributes": attributes}
            )
        log.info("notification: %s", summary(message, subject))
        return message_id

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)


def summary(message: str, subject: str | None) -> str:
    """One line for the log: the subject and the job's fields that matter."""
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        return subject or message[:200]
    parts = [subject or event.get("type", "notification"), f"job {event.get('job_id')}"]
    if event.get("cost_usd") is not None:
        parts.append(f"${event['cost_usd']:.2f}")
    if event.get("duration_seconds") is not None:
        parts.append(f"{event['duration_seconds']:.0f} s")
    if event.get("job_url"):
        parts.append(str(event["job_url"]))
    return "  ".join(parts)


def _attributes(form: dict[str, str]) -> dict[str, str]:
    """MessageAttributes.entry.N.Name / .Value.StringValue, as the query protocol sends them."""
    found: dict[str, str] = {}
    index = 1
    while f"MessageAttributes.entry.{index}.Name" in form:
        name = form[f"MessageAttributes.entry.{index}.Name"]
        found[name] = form.get(f"MessageAttributes.entry.{index}.Value.StringValue", "")
        index += 1
    return found


def _error(code: str, message: str, status: int) -> Response:
    body = (
        f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status_code=status, media_type="text/xml")


def create_app(topic: LocalTopic) -> Starlette:
    """SNS's query API with one action, Publish, to one topic."""

    async def sns(request: Request) -> Response:
        # The query protocol's form body, read without python-multipart (Starlette's form() needs it).
        form = {key: values[-1] for key, values in parse_qs((await request.body()).decode()).items()}
        action = form.get("Action")
        if action != "Publish":
            return _error("InvalidAction", f"the local topic answers Publish only, not {action}", 400)
        if form.get("TopicArn") != topic.arn:
            return _error("NotFound", "Topic does not exist", 404)
        message = form.get("Message")
        if not isinstance(message, str) or not message:
            return _error("InvalidParameter", "Empty message", 400)
        subject = form.get("Subject")
        message_id = topic.publish(message, subject, _attributes(form))
        body = (
            f'<PublishResponse xmlns="{_XMLNS}"><PublishResult><MessageId>{message_id}</MessageId></PublishResult>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></PublishResponse>"
        )
        return Response(body, media_type="text/xml")

    return Starlette(routes=[Route("/", sns, methods=["POST"])])


def catch_up(jobs_table: str, now: float | None = None) -> int:
    """At a start: announce the jobs that ended in the last minutes without having been announced.

    A stack that died between a job's write and the stream's delivery of it never showed that change
    to the notifier, and the local stream is read from its end at each start. Each recently ended job
    is handed to the notifier as if it had just been stored: its claims publish what was not published
    yet and nothing twice; the notifier's own rule (ended in the last 15 minutes) bounds what is news.
    Reads the whole jobs table once, as the stack's other start-up counts do (a local table is small).
    """
    import boto3

    from jobsync.domain.timestamps import parse_timestamp
    from jobsync.services.notifications import FRESH_SECONDS
    from jobsync.services.notifier import StreamChange, notify
    from jobsync.store.dynamo import from_dynamo

    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    table = boto3.resource("dynamodb").Table(jobs_table)
    scan: dict[str, Any] = {
        "FilterExpression": "#status IN (:completed, :failed, :cancelled)",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":completed": "completed", ":failed": "failed", ":cancelled": "cancelled"},
    }
    changes = []
    while True:
        page = table.scan(**scan)
        for item in map(from_dynamo, page.get("Items", [])):
            ended = parse_timestamp(item.get("completed_at"))
            if ended is not None and (moment - ended).total_seconds() <= FRESH_SECONDS:
                changes.append(StreamChange(record_id=f"catch-up#{item['job_id']}", new=item, old={}, at=moment))
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    report = notify(changes)
    if report.published:
        log.info("%d notification(s) caught up from before the start", report.published)
    if report.failed_record:
        log.warning("catching up notifications stopped at %s; the rest waits for the next start", report.failed_record)
    return report.published
