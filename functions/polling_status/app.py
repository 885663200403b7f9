"""GET /api/cloud/polling/status — whether background polling is on, and how its last tick went."""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import POLLING_STATUS
from jobsync.services.polling_preference import polling_status


@http_handler(POLLING_STATUS)
def lambda_handler(request: Request) -> dict[str, Any]:
    return asdict(polling_status())
