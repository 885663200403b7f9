"""Reading jobs: one by id, or a page of them (optionally refreshing active ones first)."""

from __future__ import annotations

from jobsync import wiring
from jobsync.domain.errors import InvalidInput, JobNotFound
from jobsync.domain.job import Job
from jobsync.domain.status import JobStatus
from jobsync.providers.registry import PROVIDERS


def get_job(job_id: str) -> Job:
    job = wiring.job_store().get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def list_jobs(
    *, limit: int, provider: str | None, status: JobStatus | None, cursor: str | None, sync_active: bool
) -> tuple[list[Job], str | None]:
    if provider is not None and provider not in PROVIDERS:
        raise InvalidInput(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    if sync_active:
        # Imported here: the refresh (its pools, writes and final-log hand-offs, 10-20 ms of a cold start) is
        # this route's alone; get_job and the routes that read one job import this module too.
        from jobsync.services.refresh import refresh_active_jobs

        for name in [provider] if provider else PROVIDERS:
            refresh_active_jobs(name)
    return wiring.job_store().page(limit=limit, provider=provider, status=status, cursor=cursor)
