"""POST /api/cloud/jobs/sync — discover the provider's jobs and update known ones.

Traced with X-Ray: a first sync follows many pages, worth seeing call by call.
"""

from aws_lambda_powertools import Tracer

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import SYNC_JOBS
from jobsync.services.discovery import discover_jobs

tracer = Tracer()


@http_handler(SYNC_JOBS)
@tracer.capture_method
def lambda_handler(request: Request) -> dict:
    report = discover_jobs("replicate")
    return {"synced": report.discovered, "updated": report.updated, "message": report.message}
