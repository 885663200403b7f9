"""Live updates: status changes seen on the jobs table's stream, pushed to every WebSocket client.

The stream sees every write whatever made it (poller, webhook, sync,
`sync_active`, inline progress), so this is the one place that broadcasts.

A fan-out of more posts (connections × messages) than one invocation should
make (`broadcast_posts_per_invocation`) is split into shares of the connections:
the broadcaster posts the first share itself and hands each other one, with the
messages, to itself (`broadcaster_function`, Lambda's async invoke), so each
connection is posted to by exactly one invocation. A share Lambda refuses is
posted by this invocation instead. Nothing of a fan-out is kept in DynamoDB: a
message is live news, and a client that misses one (a lost share, as a client
that reconnects) reads the list again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jobsync import background, wiring
from jobsync.api.models import JobOut
from jobsync.config import get_settings
from jobsync.domain.job import Job
from jobsync.observability import count, logger
from jobsync.push.websocket import ConnectionGone, PushFailed, pusher
from jobsync.store.connections import Connection
from jobsync.store.dynamo import from_dynamo

MESSAGE_TYPE = "job_status_changed"
# A share handed off stays well inside Lambda's 256 KB for an async event: its messages and connections.
_SHARE_BYTES = 200 * 1024


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
    """Every change to every connection; `connections`, `sent`, `gone` and `failed` count this
    invocation's own share (the others are counted by the invocations they were handed to)."""
    if not changes:
        return BroadcastReport(0, 0, 0, 0, 0)
    messages = [change.message() for change in changes]
    report = _report(len(changes), len(messages), _fan_out(messages, list(wiring.connection_store().all())))
    count("StatusChanges", len(changes))
    logger.info("broadcast", extra=report.__dict__)
    return report


def deliver_share(share: dict[str, Any]) -> BroadcastReport:
    """Post a share of a fan-out handed off by `broadcast` or `push_to_all` (the broadcaster's hand-off)."""
    messages = [str(message).encode() for message in share.get("messages") or []]
    connections = [Connection(str(pair[0]), str(pair[1])) for pair in share.get("connections") or []]
    report = _report(0, len(messages), _deliver_all(messages, connections))
    logger.info("broadcast share", extra=report.__dict__)
    return report


def _report(changes: int, messages: int, outcomes: list[str]) -> BroadcastReport:
    report = BroadcastReport(
        changes=changes,
        connections=len(outcomes),
        sent=sum(outcome == "sent" for outcome in outcomes),
        gone=sum(outcome == "gone" for outcome in outcomes),
        failed=sum(outcome == "failed" for outcome in outcomes),
    )
    count("MessagesSent", report.sent * messages)
    return report


def _fan_out(messages: list[bytes], connections: list[Connection]) -> list[str]:
    """Post `messages` to `connections`: the first share here, the others handed off; this share's outcomes."""
    shares = shares_of(messages, connections)
    function = get_settings().broadcaster_function
    if len(shares) == 1 or not function:
        return _deliver_all(messages, connections)
    mine = list(shares[0])
    texts = [message.decode() for message in messages]
    for share in shares[1:]:
        payload = {"fan_out": {"messages": texts, "connections": [[c.connection_id, c.source_ip] for c in share]}}
        if not background.hand_off(function, payload):
            mine += share  # Lambda refused it: posted here, while this invocation has the time
    logger.info("fan-out split", extra={"connections": len(connections), "shares": len(shares)})
    return _deliver_all(messages, mine)


def shares_of(messages: list[bytes], connections: list[Connection]) -> list[list[Connection]]:
    """`connections` cut into shares of at most `broadcast_posts_per_invocation` posts each whose hand-off
    (the messages and the share's connections, as JSON) fits in _SHARE_BYTES. Messages that alone leave
    no room make one share: this invocation posts them all."""
    per_share = max(1, get_settings().broadcast_posts_per_invocation // max(1, len(messages)))
    room = _SHARE_BYTES - sum(len(json.dumps(message.decode())) + 2 for message in messages)
    if len(connections) <= per_share or room < 1024:
        return [connections]
    shares: list[list[Connection]] = [[]]
    used = 0
    for connection in connections:
        size = len(connection.connection_id) + len(connection.source_ip) + 8  # ["id","ip"], in JSON
        if len(shares[-1]) >= per_share or (shares[-1] and used + size > room):
            shares.append([])
            used = 0
        shares[-1].append(connection)
        used += size
    return shares


def _deliver_all(messages: list[bytes], connections: list[Connection]) -> list[str]:
    if not connections:
        return []
    workers = min(get_settings().broadcast_workers, len(connections))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda connection: _deliver(connection, messages), connections))


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
    connected client, through the same delivery as status changes; returns how many clients got it
    from this invocation (a large fan-out hands the other shares off, as `broadcast` does)."""
    connections = list(wiring.connection_store().all())
    if not connections:
        return 0
    outcomes = _fan_out([json.dumps(message).encode()], connections)
    return sum(outcome == "sent" for outcome in outcomes)
