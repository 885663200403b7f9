"""Shared fixtures: AWS under moto with the tables from template.yaml, a fake Replicate, real events."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from local import lambda_runtime

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
API_TOKEN = "test-api-token"
REGION = "us-east-1"


def LambdaContext(function_name: str = "jobsync-test", remaining_ms: int = 60_000) -> lambda_runtime.LambdaContext:
    """Lambda's context for a function with `remaining_ms` left."""
    return lambda_runtime.LambdaContext(function_name=function_name, timeout_seconds=remaining_ms / 1000)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def load_handler(function: str):
    """functions/<function>/app.py's lambda_handler, loaded the way the local stack loads it."""
    return lambda_runtime.load_handler(f"functions/{function}/")


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Environment for every function, pointing at moto and the fake Replicate."""
    from tests.fakes.replicate import BASE_URL

    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JOBS_TABLE_NAME": "jobs",
        "CONNECTIONS_TABLE_NAME": "connections",
        "STATE_TABLE_NAME": "state",
        "JOBSYNC_API_TOKEN_HASHES": hashlib.sha256(API_TOKEN.encode()).hexdigest(),
        "REPLICATE_API_TOKEN": "r8_test_token",
        "REPLICATE_API_BASE_URL": BASE_URL,
        "JOBSYNC_WEBSOCKET_URL": "wss://ws.example.test/prod",
        "JOBSYNC_WEBSOCKET_MANAGEMENT_URL": "https://ws.example.test/prod",
        "POWERTOOLS_METRICS_NAMESPACE": "jobsync-test",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name in (
        "REPLICATE_WEBHOOK_SECRET",
        "JOBSYNC_WEBHOOK_URL",
        "SIMPLETUNER_JOB_POLL_INTERVAL",
        "JOBSYNC_CONFIG",
        "JOBSYNC_POLLING_ENABLED",
        "JOBSYNC_HARDWARE_MAP",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    from jobsync import wiring

    wiring.reset()
    yield values
    wiring.reset()


@pytest.fixture
def tables(aws_env):
    """DynamoDB under moto, with the tables exactly as template.yaml declares them."""
    import boto3
    from moto import mock_aws

    from local.template import create_tables, load_template

    names = {"JobsTable": "jobs", "ConnectionsTable": "connections", "StateTable": "state"}
    with mock_aws():
        create_tables(boto3.client("dynamodb", region_name=REGION), load_template(), names.__getitem__)
        yield names


@pytest.fixture
def replicate(aws_env):
    """The fake Replicate, answering every request of the provider client."""
    import respx

    from tests.fakes.replicate import BASE_URL, FakeReplicate

    fake = FakeReplicate()
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=BASE_URL).mock(side_effect=fake)
        yield fake


class Api:
    """Calls a function's handler with its events/ sample event, changed as a test needs."""

    def __init__(self) -> None:
        self.context = LambdaContext()

    def call(
        self,
        function: str,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
        event: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        event = copy.deepcopy(event or load_event(function))
        if path is not None:
            event["pathParameters"] = path
        if query is not None:
            event["queryStringParameters"] = query
        if body is not None:
            event["body"] = body if isinstance(body, str) else json.dumps(body)
            event["isBase64Encoded"] = False
        if headers is not None:
            event["headers"] = headers
        authorizer = event.setdefault("requestContext", {}).setdefault("authorizer", {})
        authorizer["lambda"] = {"authenticated": authenticated}
        answer = load_handler(function)(event, self.context)
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


@pytest.fixture
def api(tables, replicate) -> Api:
    return Api()
