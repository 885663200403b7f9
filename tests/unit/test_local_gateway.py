"""The local API Gateway's routing: the most specific route wins, `{proxy+}` catches the rest after the dashboard."""

from __future__ import annotations

import textwrap
import warnings

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from local.gateway import WebSocketApi, create_gateway
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
    ],
)
def test_everything_else_reaches_the_catch_all_with_its_proxy_parameter(client, method, path, proxy):
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
    for method, path in (("DELETE", "/api/health"), ("GET", "/api/nothing"), ("POST", "/app.js"), ("GET", "/x.js")):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "not_found", "message": f"no route for {method} {path}"}
        assert response.headers["content-type"] == "application/json"
    assert client.get("/app.js").status_code == 200
