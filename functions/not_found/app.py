"""ANY /{proxy+} — whatever no other route serves, answered as the contract's 404."""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import NOT_FOUND
from jobsync.domain.errors import RouteNotFound


@http_handler(NOT_FOUND)
def lambda_handler(request: Request) -> dict[str, Any]:
    raise RouteNotFound(f"no route for {request.method} {request.raw_path}")
