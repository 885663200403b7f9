"""Live updates: status changes seen on the jobs table's stream, pushed to every WebSocket client.

The stream sees every write whatever made it (poller, webhook, sync,
`sync_active`, inline progress), so this is the one place that broadcasts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jobsync import wiring
from jobsync.api.models import JobOut
from jobsync.config import get_settings
from jobsync.domain.job import Job
from jobsync.observability import count, logger
from jobsync.push.websocket import ConnectionGone, PushFailed, pusher
from jobsync.store.connections import Connection
from jobsync.store.dynamo import from_dynamo

MESSAGE_TYPE = "job_status_changed"


@dataclass(frozen=True)
class StatusChange:
    job: Job
    previous_status: str | None

    def message(self) -> bytes:
        return json.dumps(
            {
                "type": MESSAGE_TYPE,
                "job_id": self.job.job_id,
                "status": self.job.status.value,
                "previous_status": self.previous_status,
                "provider": self.job.provider,
                "job": JobOut.from_job(self.job).model_dump(mode="json"),
            }
        ).encode()


@dataclass(frozen=True)
class BroadcastReport:
    changes: int
    connections: int
    sent: int
    gone: int
    failed: int


def status_changes(writes: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> list[StatusChange]:
    """Written job items, as (new, old) images ({} for no old), that are a new job or a changed status."""
    changes = []
    for new_image, old_image in writes:
        new, old = from_dynamo(new_image), from_dynamo(old_image)
        if "job_id" not in new or new.get("status") == old.get("status"):
            continue
        changes.append(StatusChange(Job.from_record(new), old.get("status")))
    return changes


def broadcast(changes: list[StatusChange]) -> BroadcastReport:
    if not changes:
        return BroadcastReport(0, 0, 0, 0, 0)
    messages = [change.message() for change in changes]
    connections = list(wiring.connection_store().all())
    workers = min(get_settings().broadcast_workers, max(1, len(connections)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda connection: _deliver(connection, messages), connections))
    report = BroadcastReport(
        changes=len(changes),
        connections=len(connections),
        sent=sum(outcome == "sent" for outcome in outcomes),
        gone=sum(outcome == "gone" for outcome in outcomes),
        failed=sum(outcome == "failed" for outcome in outcomes),
    )
    count("StatusChanges", len(changes))
    count("MessagesSent", report.sent * len(messages))
    logger.info("broadcast", extra=report.__dict__)
    return report


def _deliver(connection: Connection, messages: list[bytes]) -> str:
    try:
        for message in messages:
            pusher().post(connection.connection_id, message)
    except ConnectionGone:
        # Removed the first time a send fails with 410; its IP slot is freed with it.
        wiring.connection_store().remove(connection)
        return "gone"
    except PushFailed as exc:
        logger.warning("push failed", extra={"connection_id": connection.connection_id, "error": str(exc)})
        return "failed"
    return "sent"


def push_to_all(message: dict[str, Any]) -> int:
    """One message that is not a status change (e.g. a history import's `sync_progress`) to every
    connected client, through the same delivery as status changes; returns how many clients got it."""
    connections = list(wiring.connection_store().all())
    if not connections:
        return 0
    body = json.dumps(message).encode()
    workers = min(get_settings().broadcast_workers, len(connections))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda connection: _deliver(connection, [body]), connections))
    return sum(outcome == "sent" for outcome in outcomes)
