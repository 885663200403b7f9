"""Turning API Gateway HTTP API (payload 2.0) events into validated requests, and answers into responses.

Handlers stay thin: `@http_handler(ROUTE)` checks the caller's token against
the route's scope (no API Gateway authorizer: see the README's Security
section), parses and validates the event against the route's models, maps
domain errors to the contract's `{"error", "message"}` answers and shapes the
result.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel, ValidationError

from jobsync.api.routes import Route
from jobsync.auth import Principal, bearer_token
from jobsync.deadline import invocation_deadline
from jobsync.domain.errors import Forbidden, InvalidInput, JobsyncError, StoreUnavailable, Unauthorized
from jobsync.observability import logger, metrics
from jobsync.providers.base import ProviderAuthError, ProviderError, ProviderRateLimited

_JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}

# What http_handler makes of a function of a Request: a Lambda handler of an API Gateway event and a context.
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Request:
    route: Route
    method: str
    raw_path: str
    headers: dict[str, str]
    raw_body: bytes
    source_ip: str | None
    query: Any = None
    body: Any = None
    path: Any = None
    principal: Principal | None = None  # who the token speaks for; None on an open route

    @property
    def authenticated(self) -> bool:
        return self.principal is not None


def response(status: int, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**_JSON_HEADERS, **(headers or {})},
        "body": json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
    }


def error_response(status: int, code: str, message: str) -> dict[str, Any]:
    return response(status, {"error": code, "message": message})


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "input"
        problems.append(f"{where}: {error.get('msg')}")
    return "; ".join(problems)


def _parse(model: type[BaseModel] | None, data: Any, what: str) -> Any:
    if model is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {what}: {_validation_message(exc)}") from exc


def _body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise InvalidInput("body is not valid base64") from exc
    return body.encode("utf-8", "surrogatepass")


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidInput("body is not valid JSON") from exc


def check_caller(route: Route, headers: dict[str, str]) -> Principal | None:
    """The caller's principal when the route needs one.

    Unauthorized (401) without a valid token, Forbidden (403) when its scope is smaller than the route's.
    Done before anything else is read from the request, so a refusal costs no more than the token check.
    """
    if route.scope is None:
        return None
    # Imported here: an open route such as health never loads the token store (nor boto3) at cold start.
    from jobsync.services.tokens import authority

    principal = authority().authenticate(bearer_token(headers.get("authorization")))
    if principal is None:
        raise Unauthorized("send a valid token as 'Authorization: Bearer <token>'")
    if not principal.scope.allows(route.scope):
        raise Forbidden(f"{route.key} needs a token with the '{route.scope}' scope; this token has '{principal.scope}'")
    return principal


def parse_request(route: Route, event: dict[str, Any]) -> Request:
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    principal = check_caller(route, headers)
    raw = _body_bytes(event)
    # Query parameters the route does not define are ignored (cache busters and the like).
    query_values = event.get("queryStringParameters") or {}
    query = None
    if route.query is not None:
        known = {name: value for name, value in query_values.items() if name in route.query.model_fields}
        query = _parse(route.query, known, "query")
    http = (event.get("requestContext") or {}).get("http") or {}
    return Request(
        route=route,
        method=http.get("method", route.method),
        raw_path=event.get("rawPath") or http.get("path", route.path),
        headers=headers,
        raw_body=raw,
        source_ip=http.get("sourceIp"),
        query=query,
        body=_parse(route.body, _json_body(raw), "body") if route.body else None,
        path=_parse(route.path_params, event.get("pathParameters") or {}, "path"),
        principal=principal,
    )


# DynamoDB throttling is retried with backoff by boto3 (store/dynamo.py); when that is spent the client is
# told when to come back rather than left to guess.
STORE_RETRY_AFTER_SECONDS = 2


def _answer_for(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, StoreUnavailable):
        body = {"error": exc.code, "message": str(exc)}
        return response(exc.http_status, body, {"retry-after": str(STORE_RETRY_AFTER_SECONDS)})
    if isinstance(exc, JobsyncError):
        return error_response(exc.http_status, exc.code, str(exc))
    if isinstance(exc, ProviderRateLimited):
        headers = {"retry-after": str(int(exc.retry_after))} if exc.retry_after else None
        return response(503, {"error": "provider_rate_limited", "message": str(exc)}, headers)
    if isinstance(exc, ProviderAuthError):
        return error_response(502, "provider_auth_failed", f"the provider refused our credentials: {exc}")
    if isinstance(exc, ProviderError):
        return error_response(502, "provider_error", f"the provider failed: {exc}")
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


def http_handler(route: Route) -> Callable[[Callable[[Request], Any]], LambdaHandler]:
    """Wrap a function of a Request into a Lambda handler for `route`."""

    def decorate(handle: Callable[[Request], Any]) -> LambdaHandler:
        @functools.wraps(handle)
        @metrics.log_metrics
        @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
        def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                with invocation_deadline(context):
                    result = handle(parse_request(route, event))
                if isinstance(result, dict) and "statusCode" in result:
                    return result
                if route.response is not None:
                    result = route.response.model_validate(result).model_dump(mode="json")
            except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
                return _answer_for(exc)
            return response(200, result)

        return lambda_handler

    return decorate
