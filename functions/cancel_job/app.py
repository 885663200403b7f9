"""POST /api/cloud/jobs/{job_id}/cancel — ask the provider to cancel a job."""

from jobsync.api.http import Request, http_handler
from jobsync.api.models import JobDetailOut, JobWithHistoryOut
from jobsync.api.routes import CANCEL_JOB
from jobsync.services.cancel import cancel_job


@http_handler(CANCEL_JOB)
def lambda_handler(request: Request) -> JobDetailOut:
    return JobDetailOut(job=JobWithHistoryOut.from_job(cancel_job(request.path.job_id)))
