"""DELETE /api/tokens/{token_id} — revoke an API token (admin scope); refused everywhere within 60 s."""

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import REVOKE_TOKEN
from jobsync.api.token_models import TokenOut, TokenRevokedOut
from jobsync.services.tokens import revoke_token


@http_handler(REVOKE_TOKEN)
def lambda_handler(request: Request) -> TokenRevokedOut:
    return TokenRevokedOut(token=TokenOut.model_validate(revoke_token(request.path.token_id)))
