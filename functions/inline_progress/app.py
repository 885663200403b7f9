"""GET /api/cloud/jobs/{job_id}/inline-progress"""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import INLINE_PROGRESS
from jobsync.services.inline_progress import inline_progress


@http_handler(INLINE_PROGRESS)
def lambda_handler(request: Request) -> dict[str, Any]:
    job_id = request.path.job_id
    return {"job_id": job_id, **asdict(inline_progress(job_id))}
