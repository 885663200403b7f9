"""POST /api/cloud/jobs/sync — discover the provider's jobs and update known ones.

Lambda records each invocation in X-Ray (`Tracing: Active` in template.yaml).
"""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import SYNC_JOBS
from jobsync.services.discovery import discover_jobs


@http_handler(SYNC_JOBS)
def lambda_handler(request: Request) -> dict[str, Any]:
    report = discover_jobs("replicate")
    return {
        "synced": report.discovered,
        "updated": report.updated,
        "message": report.message,
        "history_complete": report.history_complete,
    }
