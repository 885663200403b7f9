"""Keeping a job's log tail whenever its logs are read, and pushing the new lines to its followers.

Every read of a job's logs (inline progress, the logs route, the poller's and
sync's final fetches, webhooks, the tail keeper) ends here through the one
write path (job_updates), so followers get every new line from reads that
happen anyway: following a job costs the provider nothing.
"""

from __future__ import annotations

import time

from jobsync import wiring
from jobsync.domain.logs import LogTail, log_tail, new_lines
from jobsync.observability import logger
from jobsync.store.dynamo import ConcurrentUpdate


def keep_logs(job_id: str, text: str | None, now: float | None = None) -> LogTail | None:
    """Keep the bounded tail of `text` (the provider's whole log so far); None when a longer log is kept."""
    now = time.time() if now is None else now
    tail = log_tail(text)
    try:
        previous = wiring.log_store().keep(job_id, tail, len(text or ""), now)
    except ConcurrentUpdate:
        return None  # a read that started later finished first: its log is the longer one
    if previous is not None and previous.followed_until > now:
        lines = new_lines(previous.tail.lines, tail.lines)
        if lines:
            _publish(job_id, lines)
    return tail


def _publish(job_id: str, lines: list[str]) -> None:
    from jobsync.services.log_follow import publish_lines

    try:
        publish_lines(job_id, lines)
    except Exception:  # noqa: BLE001 - a push that fails never fails the read that kept the lines
        logger.exception("could not push log lines to followers", extra={"job_id": job_id})
