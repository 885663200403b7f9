"""Following a job's log lines over the WebSocket: follow, unfollow, and the push of new lines.

A follow is a row in the connections table that the `by_channel` index finds by
job (`follow#<job_id>`), so "who follows job X" is one query; each connection
follows at most `max_follows_per_connection` jobs. New lines come from reads
that happen anyway (see kept_logs.py), never from a read per follower.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain import identifiers
from jobsync.domain.errors import InvalidInput, JobsyncError
from jobsync.observability import count, logger
from jobsync.push.websocket import ConnectionGone, PushFailed, pusher
from jobsync.services.listing import get_job
from jobsync.store.connections import MAX_CONNECTION_SECONDS

MESSAGE_TYPE = "job_log_lines"
# One push holds at most this many lines (API Gateway takes 128 KB a message; a tail's lines are short).
MAX_LINES_PER_MESSAGE = 500
_PUSH_WORKERS = 8


class TooManyFollows(JobsyncError):
    code = "too_many_follows"
    http_status = 429


class UnknownConnection(JobsyncError):
    """A follow from a connection the connections table no longer has (closed, expired, or a stack that lost it)."""

    code = "unknown_connection"
    http_status = 410


def follow(connection_id: str, job_id: object) -> str:
    """Make `connection_id` receive `job_id`'s new log lines; returns the job id."""
    job = _known_job(job_id)
    limit = get_settings().max_follows_per_connection
    store = wiring.connection_store()
    if not store.follow(connection_id, job, limit):
        # The write's one condition covers both refusals; telling them apart costs a read only when refused.
        if not store.is_open(connection_id):
            raise UnknownConnection(
                "this connection is not open any more (closed or expired): reconnect, then follow again"
            )
        raise TooManyFollows(f"a connection follows at most {limit} jobs: unfollow one first")
    # Reads of the job's logs look at this hint before they ask who follows; the poller's tick reads the
    # logs of the jobs on the followed list, so lines flow even when no dashboard asks.
    wiring.log_store().mark_followed(job, time.time() + MAX_CONNECTION_SECONDS)
    wiring.log_store().add_followed(job)
    return job


def unfollow(connection_id: str, job_id: object) -> str:
    job = _valid_id(job_id)
    wiring.connection_store().unfollow(connection_id, job)
    return job


def _valid_id(job_id: object) -> str:
    try:
        return identifiers.job_id(job_id)
    except identifiers.InvalidIdentifier as exc:
        raise InvalidInput(f"job_id: {exc}") from exc


def _known_job(job_id: object) -> str:
    return get_job(_valid_id(job_id)).job_id


def publish_lines(job_id: str, lines: list[str]) -> int:
    """Push `lines` to every connection that follows `job_id`; how many connections got them."""
    followers = wiring.connection_store().followers(job_id)
    if not followers or not lines:
        return 0
    message = json.dumps(
        {"type": MESSAGE_TYPE, "job_id": job_id, "lines": lines[-MAX_LINES_PER_MESSAGE:]},
        ensure_ascii=False,
    ).encode("utf-8")
    with ThreadPoolExecutor(max_workers=min(_PUSH_WORKERS, len(followers))) as pool:
        sent = sum(pool.map(lambda connection_id: _push(connection_id, message), followers))
    count("LogLinesPushed", sent)
    return sent


def _push(connection_id: str, message: bytes) -> bool:
    try:
        pusher().post(connection_id, message)
    except ConnectionGone:
        # The broadcaster removes gone connections; $disconnect (or the TTL) takes their follows along.
        return False
    except PushFailed as exc:
        logger.warning("log push failed", extra={"connection_id": connection_id, "error": str(exc)})
        return False
    return True
