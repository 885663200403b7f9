"""GET /api/cloud/jobs/{job_id}"""

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import GET_JOB
from jobsync.services.listing import get_job


@http_handler(GET_JOB)
def lambda_handler(request: Request) -> dict:
    return {"job": get_job(request.path.job_id).to_api()}
