"""HTTP API Lambda authorizer (payload 2.0, simple responses).

It always lets the request through and tells the handler whether the bearer
token is valid: the handler then answers 401 in the contract's own error
shape, which an authorizer that denies cannot do (API Gateway would answer
403 with its own body).
"""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.auth import bearer_token, token_is_valid
from jobsync.config import get_settings


@event_source(data_class=APIGatewayAuthorizerEventV2)
def lambda_handler(event: APIGatewayAuthorizerEventV2, context: LambdaContext) -> dict[str, Any]:
    # `headers` is case-insensitive; an event without any is simply not authenticated.
    authorization = event.headers.get("authorization") if "headers" in event else None
    authenticated = token_is_valid(bearer_token(authorization), get_settings().api_token_hashes)
    return APIGatewayAuthorizerResponseV2(authorize=True, context={"authenticated": authenticated}).asdict()
