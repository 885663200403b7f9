"""Reading a job's logs: through the shared claim while it runs, from the kept tail after it ends.

One reader per job and `log_refresh_seconds` (whatever the number of clients
and Lambda instances) asks the provider; the others serve the tail kept in
DynamoDB. A reader that finds no tail kept yet while another holds the claim
waits briefly for that read to land instead of answering with nothing: the
first fifty dashboards to open a running job all see its progress.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.deadline import seconds_left
from jobsync.domain.errors import JobsyncError
from jobsync.domain.job import Job
from jobsync.domain.logs import last_lines, log_lines
from jobsync.observability import logger
from jobsync.providers.base import ProviderError
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation
from jobsync.services.listing import get_job
from jobsync.store.logs import KeptLog

Source = Literal["provider", "kept"]

# How long a reader waits for the read in flight when nothing is kept yet; a provider GET takes a
# fraction of a second, and a reader answers within API Gateway's 30 s with room to spare.
WAIT_FOR_READ_SECONDS = 3.0
_FIRST_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 0.4
# The poller's tick reads at most this many followed jobs' logs (a provider GET each, shared through the
# claim: free when a dashboard read the job within the interval), and none with less than this left.
MAX_FOLLOWED_READS_PER_TICK = 20
_MIN_SECONDS_FOR_A_READ = 5.0


@dataclass(frozen=True)
class LogRead:
    job: Job  # as stored after the read: a fetch may have seen the job end
    lines: tuple[str, ...]  # the log's newest lines known now, oldest first
    has_older: bool  # the log has older lines than these
    source: Source


@dataclass(frozen=True)
class JobLogs:
    job_id: str
    lines: list[str]
    truncated: bool
    source: Source


def job_logs(job_id: str, tail: int) -> JobLogs:
    """The newest `tail` lines of a job's log (GET /api/cloud/jobs/{job_id}/logs)."""
    job = get_job(job_id)
    read = read_logs(job) if job.is_active else _kept_read(job, wiring.log_store().kept(job_id))
    lines = last_lines(read.lines, tail)
    truncated = read.has_older or len(read.lines) > len(lines)
    return JobLogs(job_id=job.job_id, lines=lines, truncated=truncated, source=read.source)


def read_logs(job: Job) -> LogRead:
    """A running job's log: fresh from the provider for the one reader that holds the claim, else as kept."""
    store = wiring.log_store()
    kept = store.kept(job.job_id)
    now = time.time()
    interval = get_settings().log_refresh_seconds
    if kept is None or now - kept.fetched_at >= interval:
        if store.claim_refresh(job.job_id, now, interval):
            fetched = _fetch(job)
            if fetched is not None:
                return fetched
        elif kept is None:
            kept = _wait_for_read_in_flight(job.job_id)
    return _kept_read(job, kept)


def _kept_read(job: Job, kept: KeptLog | None) -> LogRead:
    if kept is None:
        return LogRead(job=job, lines=(), has_older=False, source="kept")
    return LogRead(job=job, lines=kept.tail.lines, has_older=kept.tail.has_older, source="kept")


def _fetch(job: Job) -> LogRead | None:
    """The job as the provider sees it now, stored through the one write path (which keeps the tail and
    pushes new lines to followers); None when the provider failed."""
    try:
        observation = provider_client(job.provider).get_job(job.job_id, job.kind)
    except ProviderError as exc:
        logger.warning("could not refresh logs", extra={"job_id": job.job_id, "error": str(exc)})
        return None
    outcome = record_observation(observation, current=job)
    whole = log_lines(observation.logs)
    return LogRead(job=outcome.job, lines=whole.lines, has_older=whole.has_older, source="provider")


def _wait_for_read_in_flight(job_id: str) -> KeptLog | None:
    """The tail another reader is fetching, once it is kept; None if it is not within the wait.

    The wait is counted in the pauses taken (not read off the wall clock), and never runs past the
    invocation's deadline.
    """
    waited, pause = 0.0, _FIRST_POLL_SECONDS
    while waited < WAIT_FOR_READ_SECONDS:
        left = seconds_left()
        if left is not None and left < pause:
            return None
        time.sleep(pause)
        waited += pause
        kept = wiring.log_store().kept(job_id)
        if kept is not None:
            return kept
        pause = min(pause * 2, _MAX_POLL_SECONDS)
    return None


def read_followed_jobs() -> int:
    """Read the logs of the active jobs WebSocket clients follow, so that their new lines are pushed even
    when nobody else reads them (`jobsync logs --follow` alone). The poller's tick calls this; jobs that
    ended or that nobody follows any more leave the list. How many jobs were read; never raises."""
    try:
        return _read_followed_jobs()
    except JobsyncError:
        logger.exception("could not read the followed jobs' logs")
        return 0


def _read_followed_jobs() -> int:
    store = wiring.log_store()
    followed = store.followed_jobs()
    if not followed:
        return 0
    jobs = wiring.job_store().get_many(followed)
    live = [
        jobs[job_id]
        for job_id in followed
        if job_id in jobs and jobs[job_id].is_active and wiring.connection_store().followers(job_id)
    ]
    store.drop_followed(set(followed) - {job.job_id for job in live})
    read = 0
    # A random share when there are more than a tick may read: none waits forever.
    for job in random.sample(live, min(len(live), MAX_FOLLOWED_READS_PER_TICK)):
        left = seconds_left()
        if left is not None and left < _MIN_SECONDS_FOR_A_READ:
            break
        read_logs(job)
        read += 1
    return read
