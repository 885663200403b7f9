"""The local gateway enforces the template's per-IP rule on the webhook path, as AWS WAF does in front of
CloudFront: at most N requests from one address in any 60 s, then 429 with Retry-After, reaching no function.

The gateway's clock is injected: the window moves only when a test moves it."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from local.gateway import PerIpLimit, PerIpLimiter, WebSocketApi, create_gateway, per_ip_limits
from local.template import FunctionSpec, HttpRoute, load_template

COUNTING = """
import json

CALLS = []

def lambda_handler(event, context):
    CALLS.append(event["requestContext"]["http"]["sourceIp"])
    return {"statusCode": 200, "body": json.dumps({"calls": len(CALLS)})}
"""
RULE = PerIpLimit(path_prefix="/api/webhooks/", limit=3, window=60.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Starlette:
    folder = tmp_path / "counting"
    folder.mkdir()
    (folder / "app.py").write_text(textwrap.dedent(COUNTING))
    function = FunctionSpec(
        logical_id="counting", code_uri=str(folder), handler="app.lambda_handler", environment={}, timeout=5
    )
    (tmp_path / "index.html").write_text("<html></html>")
    routes = [
        HttpRoute("POST", "/api/webhooks/replicate", function, False, None),
        HttpRoute("GET", "/api/health", function, False, None),
    ]
    return create_gateway(routes, None, WebSocketApi({}, "live"), tmp_path, per_ip_limits=[RULE], clock=clock)


def client(app: Starlette, ip: str) -> TestClient:
    return TestClient(app, client=(ip, 50_000))


def test_the_webhook_path_takes_the_limit_per_address_then_answers_429_with_retry_after(
    app: Starlette, clock: Clock
) -> None:
    first = client(app, "203.0.113.7")
    answers = []
    for second in (0, 10, 20, 30):
        clock.now = 1_000.0 + second
        answers.append(first.post("/api/webhooks/replicate", content=b"{}"))

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[2].json() == {"calls": 3}  # the function ran three times, not a fourth
    refused = answers[3]
    # The oldest counted request (at 0 s) leaves the 60 s window at 60 s: 30 s from now.
    assert refused.headers["retry-after"] == "30"
    assert refused.json()["error"] == "rate_limited"
    assert "at most 3 in 60 s" in refused.json()["message"]

    # Another address has its own count; other paths are not limited.
    assert client(app, "198.51.100.9").post("/api/webhooks/replicate", content=b"{}").json() == {"calls": 4}
    assert [first.get("/api/health").status_code for _ in range(5)] == [200] * 5

    clock.now = 1_059.0  # still inside the window of the first request
    assert first.post("/api/webhooks/replicate", content=b"{}").status_code == 429
    clock.now = 1_060.0  # the first request has left the window: one more is let through
    assert first.post("/api/webhooks/replicate", content=b"{}").status_code == 200
    assert first.post("/api/webhooks/replicate", content=b"{}").headers["retry-after"] == "10"


def test_every_method_under_the_prefix_is_counted_before_routing(app: Starlette, clock: Clock) -> None:
    spammer = client(app, "203.0.113.8")
    statuses = [spammer.get("/api/webhooks/anything").status_code for _ in range(3)]
    assert 429 not in statuses  # not routed (404 or 405), but counted
    assert spammer.post("/api/webhooks/replicate", content=b"{}").status_code == 429


def test_the_limiter_forgets_idle_addresses_and_keeps_at_most_the_limit_per_address() -> None:
    clock = Clock()
    limiter = PerIpLimiter(RULE, clock)
    for number in range(100):
        assert limiter.retry_after(f"10.0.0.{number}") is None
    for _ in range(10):
        limiter.retry_after("10.0.1.1")
    assert len(limiter._seen["10.0.1.1"]) == RULE.limit
    clock.now += 61
    limiter.retry_after("10.0.2.2")  # a sweep: every address idle for a whole window is dropped
    assert set(limiter._seen) == {"10.0.2.2"}


def test_the_rule_is_read_from_the_templates_web_acl() -> None:
    template = load_template()
    assert per_ip_limits(template) == [PerIpLimit("/api/webhooks/", 600, 60.0)]
    assert per_ip_limits(template, {"WebhookRateLimitPerIp": "20"}) == [PerIpLimit("/api/webhooks/", 20, 60.0)]
    assert per_ip_limits(template, {"WebhookRateLimitPerIp": "0"}) == []  # 0: off, as the template's Condition
    acl = template["Resources"]["WebhookWebAcl"]
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    blocked = acl["Properties"]["Rules"][0]["Action"]["Block"]["CustomResponse"]
    assert blocked["ResponseCode"] == 429 and blocked["ResponseHeaders"][0]["Name"] == "Retry-After"
    # The webhook reaches the API through the distribution the web ACL is attached to.
    distribution = template["Resources"]["DashboardDistribution"]["Properties"]["DistributionConfig"]
    assert [behavior["PathPattern"] for behavior in distribution["CacheBehaviors"]] == ["/api/webhooks/*"]
    assert distribution["WebACLId"] == {
        "Fn::If": ["WebhookRateLimitOn", {"Fn::GetAtt": ["WebhookWebAcl", "Arn"]}, {"Ref": "AWS::NoValue"}]
    }
