"""GET /api/cloud/jobs/{job_id}/logs?tail=N"""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import JOB_LOGS
from jobsync.services.logs import job_logs


@http_handler(JOB_LOGS)
def lambda_handler(request: Request) -> dict[str, Any]:
    return asdict(job_logs(request.path.job_id, request.query.tail))
