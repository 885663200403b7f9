"""Cancelling a job at its provider, and recording what the provider answered."""

from __future__ import annotations

from jobsync import wiring
from jobsync.domain.errors import JobAlreadyEnded, JobNotFound, JobUnknownToProvider
from jobsync.domain.job import Job
from jobsync.observability import logger
from jobsync.providers.base import ProviderNotFound
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation


def cancel_job(job_id: str) -> Job:
    """Ask the job's provider to cancel it, once, and return the job as it is stored afterwards.

    An ended job is refused (JobAlreadyEnded) before anything is sent. The
    provider's request is never retried here (it may have landed: the next
    poll tells), and its answer goes through the same forward-only write path
    as every other observation, so a cancel racing a completion cannot undo
    it and cancelling twice changes nothing more. A provider that has no such
    job is JobUnknownToProvider (409); one that refuses or fails raises its
    ProviderError, which the API answers with a 502.
    """
    job = wiring.job_store().get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.is_terminal:
        raise JobAlreadyEnded(job_id, job.status.value)
    try:
        answered = provider_client(job.provider).cancel(job.job_id, job.kind)
    except ProviderNotFound:
        # Not a fault of the provider's (a 5xx) nor of ours: it has no such job, which asking again will not change.
        raise JobUnknownToProvider(job_id, job.provider) from None
    logger.info(
        "cancel requested at the provider",
        extra={"job_id": job_id, "provider": job.provider, "answered_status": answered and answered.provider_status},
    )
    if answered is None or answered.job_id != job.job_id:
        # The provider took the request but its answer does not describe the job: the poller will tell.
        return job
    return record_observation(answered, current=job).job
