"""HTTP API Lambda authorizer (payload 2.0, simple responses).

It always lets the request through and tells the handler whether the bearer
token is valid: the handler then answers 401 in the contract's own error
shape, which an authorizer that denies cannot do (API Gateway would answer
403 with its own body).
"""

from jobsync.auth import bearer_token, token_is_valid
from jobsync.config import get_settings


def lambda_handler(event: dict, context: object) -> dict:
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    token = bearer_token(headers.get("authorization"))
    return {"isAuthorized": True, "context": {"authenticated": token_is_valid(token, get_settings().api_token_hashes)}}
