"""GET /api/health"""

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import HEALTH


@http_handler(HEALTH)
def lambda_handler(request: Request) -> dict:
    return {"status": "ok"}
