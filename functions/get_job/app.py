"""GET /api/cloud/jobs/{job_id}"""

from jobsync.api.http import Request, http_handler
from jobsync.api.models import JobDetailOut, JobWithHistoryOut
from jobsync.api.routes import GET_JOB
from jobsync.services.listing import get_job


@http_handler(GET_JOB)
def lambda_handler(request: Request) -> JobDetailOut:
    return JobDetailOut(job=JobWithHistoryOut.from_job(get_job(request.path.job_id)))
