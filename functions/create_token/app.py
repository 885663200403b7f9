"""POST /api/tokens — issue an API token (admin scope); its plaintext is in this answer only."""

from dataclasses import asdict

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import CREATE_TOKEN
from jobsync.api.token_models import TokenCreatedOut
from jobsync.services.tokens import create_token


@http_handler(CREATE_TOKEN)
def lambda_handler(request: Request) -> TokenCreatedOut:
    plaintext, metadata = create_token(request.body.name, request.body.scope, request.body.expires_at)
    return TokenCreatedOut(token=plaintext, **asdict(metadata))
