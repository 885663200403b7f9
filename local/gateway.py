"""A local API Gateway built from template.yaml: HTTP API (payload 2.0), WebSocket API and its management API.

Every request becomes the event API Gateway would send, handed to the same
handler in this process. HTTP and WebSocket share one port, like the two
APIs share one stack.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from local import lambda_runtime
from local.template import FunctionSpec, HttpRoute

log = logging.getLogger("local.gateway")

API_ID = "local"
ACCOUNT_ID = "000000000000"


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
        "routeKey": route.key,
        "rawPath": request.url.path,
        "rawQueryString": request.url.query,
        "cookies": [f"{k}={v}" for k, v in request.cookies.items()] or None,
        "headers": headers,
        "queryStringParameters": _query(request),
        "pathParameters": dict(request.path_params) or None,
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
            "routeKey": route.key,
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


def _http_endpoint(route: HttpRoute, authorizer: FunctionSpec | None):
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


# ---- the app ------------------------------------------------------------------------


def _not_found(request: Request, exc: Exception | None = None) -> Response:
    # An HTTP API answers this for any route + method it does not have, a known path included.
    return JSONResponse({"message": "Not Found"}, status_code=404)


def create_gateway(
    http_routes: list[HttpRoute],
    authorizer: FunctionSpec | None,
    websocket: WebSocketApi,
    web_root: Path,
) -> Starlette:
    routes: list[Any] = [
        Route(route.path, _http_endpoint(route, authorizer), methods=[route.method]) for route in http_routes
    ]
    stage = f"/{websocket.stage}"
    routes += [
        WebSocketRoute(stage, websocket.endpoint),
        Route(f"{stage}/@connections/{{connection_id}}", websocket.manage, methods=["POST", "GET", "DELETE"]),
        # The dashboard: deployed to S3/CloudFront, served here from the same folder.
        Route("/", lambda request: FileResponse(web_root / "index.html"), methods=["GET"]),
        Mount("/", app=StaticFiles(directory=web_root)),
    ]
    app = Starlette(routes=routes)
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_found)  # a wrong method on a known path: still no such route
    return app
