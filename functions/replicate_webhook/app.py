"""POST /api/webhooks/replicate — signed by Replicate (Standard Webhooks), not by a bearer token; in AWS
taken only through CloudFront (services/origin_verify.py)."""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import REPLICATE_WEBHOOK
from jobsync.services.webhooks import receive_replicate_webhook


@http_handler(REPLICATE_WEBHOOK)
def lambda_handler(request: Request) -> dict[str, Any]:
    receipt = receive_replicate_webhook(request.headers, request.raw_body)
    job = receipt.job
    return {
        "received": True,
        "duplicate": receipt.duplicate,
        "job_id": job.job_id if job else None,
        "status": job.status.value if job else None,
    }
