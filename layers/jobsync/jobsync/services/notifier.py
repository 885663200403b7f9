"""Publishing the notifications that changes on the jobs table's stream produce, exactly once each.

For each change, in stream order: the notifications it produces
(services/notifications.py), each claimed in DynamoDB before it is published
to the topic, marked published after, released when the publish failed (so the
stream's retry publishes it). With the webhook channel on, the message is then
handed to the `notify_webhook` function, which posts it on its own time: a slow
or broken webhook never holds up the stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from jobsync import background, deadline, wiring
from jobsync.config import get_settings
from jobsync.observability import count, logger
from jobsync.push.topic import PublishFailed, topic
from jobsync.services.notifications import Notification, notifications_for
from jobsync.store.notifications import Claim

# Outside an invocation (no deadline), how long a claim holds before another caller may take it over.
DEFAULT_LEASE_SECONDS = 60.0
# Beyond the invocation's deadline: its reserve (jobsync.deadline keeps 2 s) and clock drift between instances.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class StreamChange:
    """One written job item from the stream: its record's id (the batch item identifier), the images, when."""

    record_id: str
    new: dict[str, object]
    old: dict[str, object]
    at: datetime


@dataclass
class NotifyReport:
    published: int = 0
    already_published: int = 0
    handed_off: int = 0
    # The first record that must be retried (Lambda retries it and every later one of the batch).
    failed_record: str | None = None
    events: list[str] = field(default_factory=list)


def notify(changes: Sequence[StreamChange], *, clock: Callable[[], float] = time.time) -> NotifyReport:
    """Publish what `changes` produce; stops at the first record that could not be done completely."""
    settings = get_settings()
    report = NotifyReport()
    if topic() is None and not settings.notify_webhook_function:
        return report  # notifications are off
    for change in changes:
        produced = notifications_for(
            dict(change.new),
            dict(change.old),
            at=change.at,
            cost_threshold_usd=settings.notify_cost_threshold_usd,
            dashboard_url=settings.dashboard_url,
        )
        try:
            done = all(_publish_once(notification, report, clock) for notification in produced)
        except Exception:  # noqa: BLE001 - e.g. DynamoDB unavailable: this record and the rest are retried
            logger.exception("notification failed", extra={"record": change.record_id})
            done = False
        if not done:
            report.failed_record = change.record_id
            break
    count("NotificationsPublished", report.published)
    return report


def lease_until(now: float) -> float:
    """Until when a claim taken `now` holds: as long as this invocation may run, so that a later claimer
    finds it expired only when its holder died."""
    left = deadline.seconds_left()
    return now + (DEFAULT_LEASE_SECONDS if left is None else max(left, 0.0) + LEASE_MARGIN_SECONDS)


def _publish_once(notification: Notification, report: NotifyReport, clock: Callable[[], float]) -> bool:
    """True when the notification is published (now or before); False when it must be retried."""
    store = wiring.notification_store()
    settings = get_settings()
    event_id, claim, now = notification.event_id, uuid.uuid4().hex, clock()
    outcome = store.claim(event_id, claim, now, lease_until(now))
    if outcome is Claim.DONE:
        report.already_published += 1
        return True
    if outcome is Claim.BUSY:
        logger.info("notification claimed by a live invocation; retried later", extra={"event_id": event_id})
        return False
    payload = notification.payload()
    published = topic()
    if published is not None:
        try:
            published.publish(
                payload,
                subject=notification.subject(),
                attributes={"type": notification.type, "status": notification.job.status.value},
            )
        except PublishFailed as exc:
            store.release(event_id, claim)
            logger.warning("notification not published", extra={"event_id": event_id, "error": str(exc)})
            return False
        except BaseException:
            store.release(event_id, claim)  # not published: the retry must not find the claim held
            raise
    webhook_function = settings.notify_webhook_function
    store.published(event_id, claim, clock(), delivery=payload if webhook_function else None)
    report.published += 1
    report.events.append(event_id)
    logger.info("notification published", extra={"event_id": event_id, "type": notification.type})
    if webhook_function and background.hand_off(webhook_function, {"event_id": event_id}):
        # Only the event id travels: the delivery reads what to send from DynamoDB, where it is kept.
        report.handed_off += 1
    return True
