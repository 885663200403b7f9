"""GET /api/cloud/replicate/validate — are the Replicate credentials good?"""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import VALIDATE_PROVIDER
from jobsync.services.overview import check_credentials


@http_handler(VALIDATE_PROVIDER)
def lambda_handler(request: Request) -> dict[str, Any]:
    return asdict(check_credentials("replicate"))
