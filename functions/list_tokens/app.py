"""GET /api/tokens — every API token's metadata (admin scope): never a token, never a digest."""

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import LIST_TOKENS
from jobsync.api.token_models import TokenListOut, TokenOut
from jobsync.services.tokens import list_tokens


@http_handler(LIST_TOKENS)
def lambda_handler(request: Request) -> TokenListOut:
    return TokenListOut(tokens=[TokenOut.model_validate(token) for token in list_tokens()])
