"""The local API Gateway: the most specific route wins, `{proxy+}` catches the rest after the dashboard, a wrong
method is a 405 without a catch-all; served by uvicorn as the stack serves it, the source IP is the peer's and an
oversized WebSocket handshake is answered."""

from __future__ import annotations

import socket
import textwrap
import threading
import time
import warnings

import httpx
import pytest
import uvicorn
from starlette.exceptions import StarletteDeprecationWarning
from websockets.sync.client import connect

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from local.gateway import MAX_HANDSHAKE_BYTES, WEBSOCKET_PROTOCOL, WebSocketApi, create_gateway
from local.template import FunctionSpec, HttpRoute

ECHO = """
import json

def lambda_handler(event, context):
    body = {
        "route": event["routeKey"],
        "path_parameters": event["pathParameters"],
        "method": event["requestContext"]["http"]["method"],
    }
    return {"statusCode": STATUS, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
"""


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    """Two handlers that answer with the route key they were called for: one 200, one 404."""
    root = tmp_path_factory.mktemp("functions")
    specs = {}
    for name, status in (("echo", 200), ("not_found", 404)):
        folder = root / name
        folder.mkdir()
        (folder / "app.py").write_text(textwrap.dedent(ECHO).replace("STATUS", str(status)))
        specs[name] = FunctionSpec(
            logical_id=name, code_uri=str(folder), handler="app.lambda_handler", environment={}, timeout=5
        )
    return specs


@pytest.fixture(scope="module")
def web_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text("<html>Sync</html>")
    (root / "app.js").write_text("console.log('dashboard')")
    (root / "styles.css").write_text("body {}")
    (root / "nested").mkdir()
    return root


def gateway(functions, web_root, *paths: tuple[str, str, str]) -> TestClient:
    routes = [HttpRoute(method, path, functions[name], False, None) for method, path, name in paths]
    return TestClient(create_gateway(routes, None, WebSocketApi({}, "live"), web_root))


SPECIFIC = (
    ("GET", "/api/health", "echo"),
    ("GET", "/api/cloud/jobs/{job_id}", "echo"),
    ("POST", "/api/cloud/jobs/sync", "echo"),
    ("GET", "/api/cloud/jobs/sync", "echo"),
)
CATCH_ALL = ("ANY", "/{proxy+}", "not_found")


@pytest.fixture(scope="module")
def client(functions, web_root):
    # The catch-all comes first in the template here: order in the template must not matter.
    return gateway(functions, web_root, CATCH_ALL, *SPECIFIC)


def answered(response) -> tuple[int, str, dict | None]:
    body = response.json()
    return response.status_code, body["route"], body["path_parameters"]


def test_specific_routes_win_over_the_catch_all(client):
    assert answered(client.get("/api/health")) == (200, "GET /api/health", None)
    assert answered(client.get("/api/cloud/jobs/abc")) == (200, "GET /api/cloud/jobs/{job_id}", {"job_id": "abc"})
    assert answered(client.get("/api/cloud/jobs/sync")) == (200, "GET /api/cloud/jobs/sync", None)
    assert answered(client.post("/api/cloud/jobs/sync")) == (200, "POST /api/cloud/jobs/sync", None)


@pytest.mark.parametrize(
    ("method", "path", "proxy"),
    [
        ("GET", "/api/nothing", "api/nothing"),
        ("GET", "/a/b/c/d", "a/b/c/d"),
        ("DELETE", "/api/health", "api/health"),
        ("PUT", "/api/cloud/jobs/sync", "api/cloud/jobs/sync"),
        ("PATCH", "/api/cloud/jobs/abc", "api/cloud/jobs/abc"),
        ("OPTIONS", "/api/cloud/metrics", "api/cloud/metrics"),
        ("POST", "/app.js", "app.js"),
        ("GET", "/missing.js", "missing.js"),
        ("GET", "/nested", "nested"),
        ("GET", "/live", "live"),
        ("TRACE", "/api/health", "api/health"),
        ("TRACE", "/nowhere", "nowhere"),
    ],
)
def test_everything_else_reaches_the_catch_all_with_its_proxy_parameter(client, method, path, proxy):
    # The catch-all's function decides: the deployed one answers 405 for a known path, else 404.
    response = client.request(method, path)
    assert answered(response) == (404, "ANY /{proxy+}", {"proxy": proxy})
    assert response.json()["method"] == method


def test_the_dashboard_files_come_before_the_catch_all(client):
    page = client.get("/")
    assert page.status_code == 200 and "Sync" in page.text and "text/html" in page.headers["content-type"]
    script = client.get("/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/styles.css").status_code == 200
    assert client.head("/app.js").status_code == 200
    assert client.get("/../pyproject.toml").json()["route"] == "ANY /{proxy+}"


def test_a_more_specific_greedy_route_and_a_methods_own_route_beat_wider_ones(functions, web_root):
    client = gateway(
        functions,
        web_root,
        CATCH_ALL,
        ("ANY", "/api/{proxy+}", "echo"),
        ("ANY", "/api/items/{id}", "not_found"),
        ("GET", "/api/items/{id}", "echo"),
    )
    assert answered(client.get("/api/x/y")) == (200, "ANY /api/{proxy+}", {"proxy": "x/y"})
    assert answered(client.get("/elsewhere")) == (404, "ANY /{proxy+}", {"proxy": "elsewhere"})
    assert answered(client.get("/api/items/7")) == (200, "GET /api/items/{id}", {"id": "7"})
    assert answered(client.delete("/api/items/7")) == (404, "ANY /api/items/{id}", {"id": "7"})


def test_a_default_route_catches_what_nothing_else_does_without_path_parameters(functions, web_root):
    client = gateway(functions, web_root, ("ANY", "$default", "not_found"), ("GET", "/api/health", "echo"))
    assert answered(client.post("/api/health")) == (404, "$default", None)
    assert answered(client.get("/api/health")) == (200, "GET /api/health", None)
    assert client.get("/app.js").status_code == 200


def test_without_a_catch_all_the_gateway_answers_the_contracts_404(functions, web_root):
    client = gateway(functions, web_root, *SPECIFIC)
    for method, path in (("GET", "/api/nothing"), ("POST", "/app.js"), ("GET", "/x.js"), ("TRACE", "/nowhere")):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "not_found", "message": f"no route for {method} {path}"}
        assert response.headers["content-type"] == "application/json"
    assert client.get("/app.js").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/health", "GET, HEAD"),
        ("PUT", "/api/cloud/jobs/sync", "GET, HEAD, POST"),  # every route of the path, not the first one
        ("TRACE", "/api/cloud/jobs/abc", "GET, HEAD"),
        ("TRACE", "/api/health", "GET, HEAD"),
        ("PATCH", "/live/@connections/abc", "DELETE, GET, HEAD, POST"),
    ],
)
def test_without_a_catch_all_a_wrong_method_is_a_405_with_allow(functions, web_root, method, path, allowed):
    response = gateway(functions, web_root, *SPECIFIC).request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "method_not_allowed",
        "message": f"{path} does not serve {method}; it serves {allowed}",
    }


# --------------------------------------------------------------------------- served by uvicorn, as the stack does

SOURCE_IP = """
def lambda_handler(event, context):
    request = event["requestContext"]
    source = request["identity"]["sourceIp"] if "identity" in request else request["http"]["sourceIp"]
    return {"statusCode": 200, "body": source}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, web_root):
    """The gateway under uvicorn with the stack's options, on a free port: (http URL, host, port).

    An HTTP route and the WebSocket's $default answer with the source IP of the event they were given.
    """
    folder = tmp_path_factory.mktemp("source_ip")
    (folder / "app.py").write_text(textwrap.dedent(SOURCE_IP))
    spec = FunctionSpec(
        logical_id="source_ip", code_uri=str(folder), handler="app.lambda_handler", environment={}, timeout=5
    )
    websocket = WebSocketApi({"$connect": spec, "$disconnect": spec, "$default": spec}, "live")
    app = create_gateway([HttpRoute("GET", "/whoami", spec, False, None)], None, websocket, web_root)
    # What local/stack.py gives uvicorn for the gateway.
    assert WEBSOCKET_PROTOCOL == "local.gateway:WebSocketProtocol"
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws=WEBSOCKET_PROTOCOL,
        proxy_headers=False,
        lifespan="off",
        log_level="critical",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)  # waits for the server to start; no result depends on timing
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", port
    server.should_exit = True
    thread.join(timeout=10)


SPOOFED = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"}


def test_the_source_ip_is_the_peers_whatever_forwarding_headers_say(served):
    url, port = served
    assert httpx.get(f"{url}/whoami", headers=SPOOFED).text == "127.0.0.1"
    with connect(f"ws://127.0.0.1:{port}/live", additional_headers=SPOOFED, open_timeout=10) as socket_:
        socket_.send("who am I?")
        assert socket_.recv(timeout=10) == "127.0.0.1"


def handshake(port: int, *headers: str) -> bytes:
    """A raw WebSocket upgrade request with extra header lines; what the server sends before closing
    (or its first answer, for a 101)."""
    request = (
        f"GET /live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + "".join(f"{header}\r\n" for header in headers)
        + "\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request.encode())
        answer = b""
        while chunk := client.recv(65536):  # a hang fails here, with socket.timeout, after 10 s
            answer += chunk
            if answer.startswith(b"HTTP/1.1 101"):
                break
        return answer


@pytest.mark.parametrize(
    "headers",
    [
        ["X-Big: " + "a" * 9000],  # one line longer than websockets reads: it used to hang
        [f"X-Part-{n}: " + "a" * 3000 for n in range(4)],  # 12 KB in lines websockets would read
    ],
    ids=["one-long-line", "many-lines"],
)
def test_an_oversized_websocket_handshake_is_answered_431_and_closed(served, headers):
    _, port = served
    answer = handshake(port, *headers)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert body == b'{"message": "Request Header Fields Too Large"}'


def test_a_websocket_handshake_websockets_cannot_read_is_answered_400(served):
    _, port = served
    answer = handshake(port, *[f"X-H{n}: a" for n in range(200)])  # more headers than websockets takes
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and answer.endswith(b'{"message": "Bad Request"}')


def test_a_handshake_within_the_limit_still_connects(served):
    _, port = served
    near_the_limit = [f"X-Part-{n}: " + "a" * 3500 for n in range(2)]
    assert sum(len(header) + 2 for header in near_the_limit) < MAX_HANDSHAKE_BYTES - 300
    assert handshake(port, *near_the_limit).startswith(b"HTTP/1.1 101 Switching Protocols")
