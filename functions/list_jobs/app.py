"""GET /api/cloud/jobs — newest first, filtered, paged; `sync_active=true` refreshes active jobs first."""

from jobsync.api.http import Request, http_handler
from jobsync.api.models import JobListOut, JobOut
from jobsync.api.routes import LIST_JOBS
from jobsync.services.listing import list_jobs


@http_handler(LIST_JOBS)
def lambda_handler(request: Request) -> JobListOut:
    query = request.query
    jobs, next_cursor = list_jobs(
        limit=query.limit,
        provider=query.provider,
        status=query.status,
        cursor=query.cursor,
        sync_active=query.sync_active,
    )
    return JobListOut(jobs=[JobOut.from_job(job) for job in jobs], next_cursor=next_cursor)
