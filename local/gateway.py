"""A local API Gateway built from template.yaml: HTTP API (payload 2.0), WebSocket API and its management API.

Every request becomes the event API Gateway would send, handed to the same
handler in this process. HTTP and WebSocket share one port, like the two
APIs share one stack.

Served by uvicorn (local/stack.py) with `proxy_headers=False`, so the source
IP is always the peer's, whatever `X-Forwarded-For` says (the WebSocket cap per
source IP depends on it), and with `ws=WEBSOCKET_PROTOCOL`, which answers a
handshake uvicorn's own protocol would leave hanging.

The template's per-IP rate rules (an AWS WAF web ACL on the CloudFront path to
the webhook) are enforced here too, before any route: `per_ip_limits(template)`
reads them, `create_gateway(..., per_ip_limits=...)` applies them.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import secrets
import stat
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from local import lambda_runtime
from local.template import FunctionSpec, HttpRoute, resolve

log = logging.getLogger("local.gateway")

API_ID = "local"
ACCOUNT_ID = "000000000000"
DEFAULT_ROUTE = "$default"
# The most a WebSocket handshake's request line and headers may hold together: about what API Gateway takes
# (10 KB for the HTTP API's), and no more than the 8 KB line websockets itself can read.
MAX_HANDSHAKE_BYTES = 8192


def _now() -> tuple[str, int]:
    moment = datetime.now(timezone.utc)
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(moment.timestamp() * 1000)


def _headers(request: Request | WebSocket) -> dict[str, str]:
    # API Gateway joins repeated headers with commas and lower-cases their names.
    joined: dict[str, str] = {}
    for name, value in request.headers.items():
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _query(request: Request | WebSocket) -> dict[str, str] | None:
    joined: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined or None


def _source_ip(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "127.0.0.1"


async def _invoke(function: FunctionSpec, event: dict[str, Any]) -> Any:
    return await run_in_threadpool(
        lambda_runtime.invoke, function.code_uri, function.handler, event, timeout=function.timeout
    )


# ---- HTTP API ------------------------------------------------------------------


def _route_key(route: HttpRoute) -> str:
    return DEFAULT_ROUTE if route.path == DEFAULT_ROUTE else route.key


def _http_event(route: HttpRoute, request: Request, body: bytes) -> dict[str, Any]:
    time_text, epoch_ms = _now()
    text_body: str | None = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode(), True
    headers = _headers(request)
    return {
        "version": "2.0",
        "routeKey": _route_key(route),
        "rawPath": request.url.path,
        "rawQueryString": request.url.query,
        "cookies": [f"{k}={v}" for k, v in request.cookies.items()] or None,
        "headers": headers,
        "queryStringParameters": _query(request),
        # $default has no path of its own, so no path parameters; `{proxy+}` carries what it matched.
        "pathParameters": None if route.path == DEFAULT_ROUTE else dict(request.path_params) or None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": request.url.hostname,
            "domainPrefix": (request.url.hostname or "").split(".")[0],
            "http": {
                "method": request.method,
                "path": request.url.path,
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "sourceIp": _source_ip(request),
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": _route_key(route),
            "stage": "$default",
            "time": time_text,
            "timeEpoch": epoch_ms,
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def _route_arn(route_key: str) -> str:
    method, _, path = route_key.partition(" ")
    return f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/$default/{method}{path}"


def _authorizer_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": _route_arn(event["routeKey"]),
        "identitySource": [],
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": event["headers"],
        "queryStringParameters": event["queryStringParameters"],
        "pathParameters": event["pathParameters"],
        "requestContext": event["requestContext"],
    }


def _http_response(result: Any) -> Response:
    """Payload 2.0 response rules: a dict with statusCode is taken as is; anything else is JSON 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return JSONResponse(result)
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(content=content, status_code=int(result["statusCode"]))
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for cookie in result.get("cookies") or []:
        response.headers.append("set-cookie", cookie)
    return response


def _http_endpoint(route: HttpRoute, authorizer: FunctionSpec | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        event = _http_event(route, request, await request.body())
        try:
            if route.authenticated and authorizer is not None:
                decision = await _invoke(authorizer, _authorizer_event(event))
                if not decision.get("isAuthorized"):
                    return JSONResponse({"message": "Forbidden"}, status_code=403)
                event["requestContext"]["authorizer"] = {"lambda": decision.get("context") or {}}
            return _http_response(await _invoke(route.function, event))
        except Exception:  # noqa: BLE001 - what API Gateway answers when a function fails
            log.exception("function %s failed", route.function.logical_id)
            return JSONResponse({"message": "Internal Server Error"}, status_code=500)

    return endpoint


# ---- WebSocket API and its management API ---------------------------------------


@dataclass
class _Client:
    socket: WebSocket
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)


class WebSocketApi:
    """Open sockets by connection id, the three routes, and `/@connections/{id}`."""

    def __init__(self, routes: dict[str, FunctionSpec], stage: str) -> None:
        self.routes = routes
        self.stage = stage
        self.clients: dict[str, _Client] = {}

    def _event(self, socket: WebSocket, connection_id: str, route_key: str, body: str | None = None) -> dict[str, Any]:
        time_text, epoch_ms = _now()
        event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
        context = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time_text,
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": epoch_ms,
            "requestTimeEpoch": epoch_ms,
            "identity": {"sourceIp": _source_ip(socket), "userAgent": socket.headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "domainName": socket.url.hostname,
            "connectionId": connection_id,
            "apiId": API_ID,
        }
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if route_key == "$connect":
            event["headers"] = _headers(socket)
            event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
            event["queryStringParameters"] = _query(socket)
        if body is not None:
            event["body"] = body
        return event

    async def endpoint(self, socket: WebSocket) -> None:
        connection_id = base64.b64encode(secrets.token_bytes(9)).decode().replace("/", "_").replace("+", "-")
        answer = await _invoke(self.routes["$connect"], self._event(socket, connection_id, "$connect"))
        if not (isinstance(answer, dict) and 200 <= int(answer.get("statusCode", 200)) < 300):
            await socket.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        await socket.accept()
        self.clients[connection_id] = _Client(socket, _source_ip(socket), socket.headers.get("user-agent", ""))
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is None:
                    # API Gateway takes text frames only: a binary one ends the connection with 1003.
                    await socket.close(code=1003)
                    break
                self.clients[connection_id].last_active_at = time.time()
                await self._message(socket, connection_id, message["text"])
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.pop(connection_id, None)
            await _invoke(self.routes["$disconnect"], self._event(socket, connection_id, "$disconnect"))

    async def _message(self, socket: WebSocket, connection_id: str, message: str) -> None:
        function = self.routes.get("$default")
        if function is None:
            return
        answer = await _invoke(function, self._event(socket, connection_id, "$default", message))
        # The $default route has a route response: the function's body goes back to the client.
        if isinstance(answer, dict) and answer.get("body"):
            await socket.send_text(str(answer["body"]))

    async def manage(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        client = self.clients.get(connection_id)
        if client is None:
            return JSONResponse({"message": "Gone"}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
        if request.method == "POST":
            data = await request.body()
            try:
                await client.socket.send_text(data.decode("utf-8"))
            except Exception:  # noqa: BLE001 - the socket died between lookup and send
                self.clients.pop(connection_id, None)
                return JSONResponse({"message": "Gone"}, status_code=410, headers={"x-amzn-errortype": "GoneException"})
            return Response(status_code=200)
        if request.method == "DELETE":
            self.clients.pop(connection_id, None)
            await client.socket.close()
            return Response(status_code=204)
        return JSONResponse(
            {
                "connectedAt": datetime.fromtimestamp(client.connected_at, timezone.utc).isoformat(),
                "lastActiveAt": datetime.fromtimestamp(client.last_active_at, timezone.utc).isoformat(),
                "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent},
            }
        )


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, answering the handshakes it would leave hanging.

    websockets reads the upgrade request itself and gives up on one it cannot
    read (a header line over 8 KB, more than 128 headers) by closing its side
    of the connection without a word, a close uvicorn never sends: the client
    waits for ever. Here a handshake larger than MAX_HANDSHAKE_BYTES is answered
    431 and one websockets cannot read 400, with API Gateway's `{"message"}`
    body, and the connection is closed.
    """

    def data_received(self, data: bytes) -> None:
        if self.handshake_initiated:
            super().data_received(data)
            return
        # uvicorn hands the whole upgrade request over at once, as it parsed it.
        if len(data) > MAX_HANDSHAKE_BYTES:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            return
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self._refuse(HTTPStatus.BAD_REQUEST)

    def _refuse(self, status: HTTPStatus) -> None:
        body = json.dumps({"message": status.phrase}).encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        log.warning("WebSocket handshake refused: %d %s", status.value, status.phrase)
        # Nothing more is read or sent on this connection, and no ASGI app was started for it.
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


# uvicorn's `ws` option for the gateway (an import string, as uvicorn takes it).
WEBSOCKET_PROTOCOL = f"{__name__}:{WebSocketProtocol.__name__}"


# ---- per source IP limits (the template's WAF rate-based rules) ---------------------


@dataclass(frozen=True)
class PerIpLimit:
    """At most `limit` requests from one source IP in any `window` seconds to paths under `path_prefix`."""

    path_prefix: str
    limit: int
    window: float


def per_ip_limits(template: Mapping[str, Any], parameter_values: Mapping[str, Any] | None = None) -> list[PerIpLimit]:
    """The rate-based rules per IP of the template's web ACLs, each scoped down to a path prefix.

    The local stack stands for a stack in us-east-1, so a web ACL's Condition on the region holds; a
    rule whose limit parameter is 0 (off) is left out.
    """
    limits = []
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::WAFv2::WebACL":
            continue
        for rule in resource.get("Properties", {}).get("Rules") or []:
            rate = (rule.get("Statement") or {}).get("RateBasedStatement")
            if not rate or rate.get("AggregateKeyType") != "IP":
                continue
            match = (rate.get("ScopeDownStatement") or {}).get("ByteMatchStatement") or {}
            if "UriPath" not in (match.get("FieldToMatch") or {}) or match.get("PositionalConstraint") != "STARTS_WITH":
                raise ValueError(f"web ACL rule {rule.get('Name')}: only a scope down to a path prefix is emulated")
            limit = int(resolve(rate["Limit"], template, parameter_values=parameter_values))
            if limit:
                window = float(
                    resolve(rate.get("EvaluationWindowSec", 300), template, parameter_values=parameter_values)
                )
                limits.append(PerIpLimit(str(match["SearchString"]), limit, window))
    return limits


class PerIpLimiter:
    """Counts each source IP's requests over the last `window` seconds, as WAF's rate-based rule does, and
    says how long a client over the limit has to wait. Only requests let through are kept, so an address
    holds at most `limit` times; addresses idle for a whole window are forgotten."""

    def __init__(self, rule: PerIpLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def retry_after(self, source_ip: str) -> int | None:
        """None: the request is let through (and counted); else the whole seconds until one would be."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        times = self._seen.setdefault(source_ip, deque())
        while times and times[0] <= now - self.rule.window:
            times.popleft()
        if len(times) < self.rule.limit:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + self.rule.window - now))

    def _sweep(self, now: float) -> None:
        self._seen = {ip: times for ip, times in self._seen.items() if times and times[-1] > now - self.rule.window}
        self._next_sweep = now + self.rule.window


class _PerIpLimits:
    """ASGI middleware in front of every route: a request over its path's limit gets 429 with Retry-After
    and reaches no function, as a request WAF blocks never reaches the origin."""

    def __init__(self, app: ASGIApp, limiters: list[PerIpLimiter]) -> None:
        self.app = app
        self.limiters = limiters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            source_ip = scope["client"][0] if scope.get("client") else "unknown"
            for limiter in self.limiters:
                if not scope["path"].startswith(limiter.rule.path_prefix):
                    continue
                wait = limiter.retry_after(source_ip)
                if wait is not None:
                    message = (
                        f"too many requests to {limiter.rule.path_prefix} from this address (at most "
                        f"{limiter.rule.limit} in {limiter.rule.window:g} s); retry after {wait} s"
                    )
                    response = JSONResponse(
                        {"error": "rate_limited", "message": message},
                        status_code=429,
                        headers={"Retry-After": str(wait)},
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# ---- the app ------------------------------------------------------------------------


def _not_found(request: Request, exc: Exception | None = None) -> Response:
    # No route for this path. API Gateway's own answer would be {"message": "Not Found"}; the contract
    # wants every error as {"error", "message"}. The template's catch-all route answers such requests
    # (and wrong methods) when it has one; this is the fallback without it.
    return JSONResponse(
        {"error": "not_found", "message": f"no route for {request.method} {request.url.path}"}, status_code=404
    )


def _method_not_allowed(request: Request, exc: Exception | None = None) -> Response:
    # A known path asked with another method (TRACE included), when the template has no catch-all route to
    # say so: 405 with every method the routes of this path take, in the contract's error shape.
    allowed = sorted(
        {
            method
            for route in request.app.router.routes
            if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE
            for method in route.methods
        }
    )
    message = f"{request.url.path} does not serve {request.method}; it serves {', '.join(allowed)}"
    return JSONResponse(
        {"error": "method_not_allowed", "message": message}, status_code=405, headers={"Allow": ", ".join(allowed)}
    )


_GREEDY = re.compile(r"\{(\w+)\+\}")


def _is_catch_all(route: HttpRoute) -> bool:
    return route.path == DEFAULT_ROUTE or bool(_GREEDY.search(route.path))


def _specificity(route: HttpRoute) -> tuple[Any, ...]:
    """Sorts the routes API Gateway would prefer first: at the first segment where two paths differ a
    literal beats `{name}`, which beats a greedy `{name+}`; a route's own method beats ANY; $default is last."""
    if route.path == DEFAULT_ROUTE:
        return (1,)
    segments = route.path.strip("/").split("/")
    ranks = tuple(2 if _GREEDY.fullmatch(part) else 1 if part.startswith("{") else 0 for part in segments)
    return (0, ranks, route.method == "ANY")


def _starlette_route(route: HttpRoute, authorizer: FunctionSpec | None) -> Route:
    # `{proxy+}` matches one or more segments: Starlette's `path` convertor. $default matches every path.
    path = "/{path:path}" if route.path == DEFAULT_ROUTE else _GREEDY.sub(r"{\1:path}", route.path)
    starlette_route = Route(path, _http_endpoint(route, authorizer), methods=[route.method])
    if route.method == "ANY":
        # Every method, TRACE and the like included: its function decides what to answer. (Starlette
        # reads `methods=None` as GET alone for a function endpoint; None set afterwards means any.)
        starlette_route.methods = None
    return starlette_route


class _DashboardFiles(BaseRoute):
    """The dashboard's files (deployed to S3, served here from the same folder).

    It matches only a GET or HEAD for a file that exists, so that every other request still reaches
    the API's routes, its catch-all included, as it would at API Gateway.
    """

    def __init__(self, web_root: Path) -> None:
        self.files = StaticFiles(directory=web_root)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        try:
            _, found = self.files.lookup_path(self.files.get_path(scope))
        except (OSError, ValueError):  # a name too long, a null byte: no such file
            return Match.NONE, {}
        return (Match.FULL, {}) if found is not None and stat.S_ISREG(found.st_mode) else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files(scope, receive, send)


def create_gateway(
    http_routes: list[HttpRoute],
    authorizer: FunctionSpec | None,
    websocket: WebSocketApi,
    web_root: Path,
    *,
    per_ip_limits: list[PerIpLimit] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    # Starlette takes the first route that matches, so the most specific come first (as API Gateway
    # chooses), and the catch-alls (`/{proxy+}`, $default) come after everything else, the dashboard's files
    # included: those stand for the S3 site, which is not behind the API at all.
    ordered = sorted(http_routes, key=_specificity)
    stage = f"/{websocket.stage}"
    routes: list[Any] = [_starlette_route(route, authorizer) for route in ordered if not _is_catch_all(route)]
    routes += [
        WebSocketRoute(stage, websocket.endpoint),
        Route(f"{stage}/@connections/{{connection_id}}", websocket.manage, methods=["POST", "GET", "DELETE"]),
        Route("/", lambda request: FileResponse(web_root / "index.html"), methods=["GET"]),
        _DashboardFiles(web_root),
    ]
    routes += [_starlette_route(route, authorizer) for route in ordered if _is_catch_all(route)]
    limiters = [PerIpLimiter(rule, clock) for rule in per_ip_limits or []]
    app = Starlette(routes=routes, middleware=[Middleware(_PerIpLimits, limiters=limiters)] if limiters else [])
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _method_not_allowed)
    return app
