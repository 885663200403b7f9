"""Every route template.yaml deploys, with tokens of every scope: 401 without a valid token, 403 with a scope
smaller than the route table's, neither with enough; the open routes answer the same with or without one."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jobsync.api.routes import DEPLOYED_ROUTES, WEBSOCKET_SCOPE, Route
from jobsync.auth import Scope
from jobsync.services.tokens import create_token
from local.template import http_routes, load_template
from tests.conftest import API_TOKEN, LambdaContext, load_event, load_handler

TEMPLATE_ROUTES = http_routes(load_template())
TABLE = {route.key: route for route in DEPLOYED_ROUTES}


def table_route(key: str) -> Route:
    assert key in TABLE, f"{key} is deployed but not in the route table"
    return TABLE[key]


def call(folder: str, token: str | None, event: dict[str, Any] | None = None) -> tuple[int, Any]:
    """The function's sample event, with `token` as its bearer token (or none)."""
    event = copy.deepcopy(event or load_event(folder))
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "authorization"}
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    answer = load_handler(folder)(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


@pytest.fixture
def tokens(api) -> dict[Scope, str]:
    """One issued token per scope (the handlers run against moto and the fake Replicate)."""
    return {scope: create_token(f"{scope}-token", scope, None)[0] for scope in Scope}


@pytest.mark.parametrize("deployed", TEMPLATE_ROUTES, ids=lambda route: route.key)
def test_each_deployed_route_asks_for_its_scope(deployed, tokens) -> None:
    route = table_route(deployed.key)
    folder = deployed.function.folder
    if route.scope is None:
        # Open: whatever a token says plays no part in the answer.
        assert call(folder, None)[0] == call(folder, tokens[Scope.READ])[0] == call(folder, "nope")[0]
        return

    admin = tokens[Scope.ADMIN]
    forged = admin[:-1] + ("A" if admin[-1] != "A" else "B")  # the admin token's id, another secret
    for token in (None, "nope", forged):
        status, body = call(folder, token)
        assert (status, body["error"]) == (401, "unauthorized"), (route.key, token)

    for scope in Scope:
        status, body = call(folder, tokens[scope])
        if scope.allows(route.scope):
            assert status not in (401, 403), (route.key, scope, body)
        else:
            assert (status, body["error"]) == (403, "forbidden"), (route.key, scope)
            assert f"'{route.scope}' scope" in body["message"] and f"'{scope}'" in body["message"]


def test_a_refusal_comes_before_the_request_is_read(tokens) -> None:
    """No token, or too small a scope: refused before the body is parsed (a bad body would be a 400)."""
    event = load_event("polling_setting")
    event["body"] = "{not json"
    assert call("polling_setting", None, event)[0] == 401
    assert call("polling_setting", tokens[Scope.READ], event)[0] == 403
    assert call("polling_setting", tokens[Scope.OPERATE], event)[0] == 400


def test_the_bootstrap_token_is_admin(tokens) -> None:
    assert call("list_tokens", API_TOKEN)[0] == 200


def connect(token: str | None, connection_id: str) -> int:
    event = load_event("ws_connect")
    event["requestContext"]["connectionId"] = connection_id
    event["queryStringParameters"] = {"token": token} if token else None
    return load_handler("ws_connect")(event, LambdaContext())["statusCode"]


def test_the_websocket_needs_the_read_scope(tokens) -> None:
    assert WEBSOCKET_SCOPE is Scope.READ
    assert connect(None, "c0") == 401
    assert connect("nope", "c1") == 401
    assert [connect(tokens[scope], f"c-{scope}") for scope in Scope] == [200, 200, 200]
