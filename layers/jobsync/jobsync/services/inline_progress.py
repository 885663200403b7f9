"""Inline progress of a running job from its recent log lines.

The log tail is kept in the state table and refreshed from the provider at
most once per `log_refresh_seconds` per job, whatever the number of clients
and Lambda instances asking: they share one claim.
"""

from __future__ import annotations

import time

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain.job import Job
from jobsync.domain.progress import NO_PROGRESS, InlineProgress, keep_tail, parse_progress
from jobsync.domain.status import JobStatus
from jobsync.observability import logger
from jobsync.providers.base import ProviderError
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation
from jobsync.services.listing import get_job


def inline_progress(job_id: str) -> InlineProgress:
    job = get_job(job_id)
    if job.status != JobStatus.RUNNING:
        return NO_PROGRESS
    state = wiring.state_store()
    tail = state.log_tail(job_id)
    now = time.time()
    interval = get_settings().log_refresh_seconds
    stale = tail is None or now - tail.fetched_at >= interval
    if stale and state.claim_log_refresh(job_id, now, interval):
        job, fresh_logs = _fetch_logs(job)
        if fresh_logs is not None:
            return parse_progress(fresh_logs) if job.status == JobStatus.RUNNING else NO_PROGRESS
    if job.status != JobStatus.RUNNING:
        return NO_PROGRESS
    return parse_progress(tail.text if tail else None)


def _fetch_logs(job: Job) -> tuple[Job, str | None]:
    """The job as the provider sees it now (stored through the usual path), and its log tail."""
    try:
        observation = provider_client(job.provider).get_job(job.job_id, job.kind)
    except ProviderError as exc:
        logger.warning("could not refresh logs", extra={"job_id": job.job_id, "error": str(exc)})
        return job, None
    outcome = record_observation(observation, current=job)
    return outcome.job, keep_tail(observation.logs) if observation.logs else None
