"""ANY /{proxy+} — whatever no other route serves: 405 for a known path with another method, else 404."""

from typing import Any

from jobsync.api.http import Request, http_handler, response
from jobsync.api.methods import allowed_methods
from jobsync.api.routes import NOT_FOUND
from jobsync.domain.errors import RouteNotFound


@http_handler(NOT_FOUND)
def lambda_handler(request: Request) -> dict[str, Any]:
    allowed = allowed_methods(request.raw_path)
    if allowed:
        message = f"{request.raw_path} does not serve {request.method}; it serves {', '.join(allowed)}"
        return response(405, {"error": "method_not_allowed", "message": message}, {"allow": ", ".join(allowed)})
    raise RouteNotFound(f"no route for {request.method} {request.raw_path}")
