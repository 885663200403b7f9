"""GET /api/openapi.json"""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.openapi import openapi_document
from jobsync.api.routes import OPENAPI


@http_handler(OPENAPI)
def lambda_handler(request: Request) -> dict[str, Any]:
    return openapi_document()
