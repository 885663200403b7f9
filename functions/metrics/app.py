"""GET /api/cloud/metrics"""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import METRICS
from jobsync.services.overview import job_metrics


@http_handler(METRICS)
def lambda_handler(request: Request) -> dict[str, Any]:
    return asdict(job_metrics())
