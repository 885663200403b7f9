"""GET /api/health"""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import HEALTH


@http_handler(HEALTH)
def lambda_handler(request: Request) -> dict[str, Any]:
    return {"status": "ok"}
