"""GET /api/openapi.json"""

from jobsync.api.http import Request, http_handler
from jobsync.api.openapi import openapi_document
from jobsync.api.routes import OPENAPI


@http_handler(OPENAPI)
def lambda_handler(request: Request) -> dict:
    return openapi_document()
