"""The local stack's Lambda Invoke API: hand-offs queue, run on a bounded pool, retry, then dead-letter."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from local.async_invoke import AsyncInvoker, InvokableFunction, create_app, invokable_functions
from local.template import load_template

KEEPER = InvokableFunction(name="jobsync-worker", code_uri="functions/x/", handler="app.lambda_handler", timeout=5)


class Runs:
    """Stands in for running a function: records events, fails the first `failures` attempts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()

    def __call__(self, function: InvokableFunction, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if len(self.events) <= self.failures:
            raise RuntimeError(f"attempt {len(self.events)} broke")
        self.done.set()
        return {"ran": event}


def _invoker(tmp_path: Path, runs: Runs, sleeps: list[float], function: InvokableFunction = KEEPER) -> AsyncInvoker:
    return AsyncInvoker([function], tmp_path / "dead-letters.jsonl", run=runs, sleep=sleeps.append)


def test_an_event_invoke_is_answered_202_and_runs_later(tmp_path: Path) -> None:
    runs, sleeps = Runs(), []
    invoker = _invoker(tmp_path, runs, sleeps)
    client = TestClient(create_app(invoker))
    answer = client.post(
        "/2015-03-31/functions/jobsync-worker/invocations",
        content=b'{"job": 1}',
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    assert answer.status_code == 202
    assert runs.done.wait(60)  # generous: a loaded machine is slow, not broken
    invoker.close(wait=True)
    assert runs.events == [{"job": 1}]
    assert sleeps == []


def test_a_request_response_invoke_answers_the_result(tmp_path: Path) -> None:
    invoker = _invoker(tmp_path, Runs(), [])
    answer = TestClient(create_app(invoker)).post("/2015-03-31/functions/jobsync-worker/invocations", json={"a": 2})
    assert answer.json() == {"ran": {"a": 2}}


def test_unknown_functions_and_bad_json_are_refused(tmp_path: Path) -> None:
    client = TestClient(create_app(_invoker(tmp_path, Runs(), [])))
    assert client.post("/2015-03-31/functions/nope/invocations", json={}).status_code == 404
    assert client.post("/2015-03-31/functions/jobsync-worker/invocations", content=b"{").status_code == 400


def test_failures_are_retried_with_backoff_then_succeed(tmp_path: Path) -> None:
    runs, sleeps = Runs(failures=2), []
    invoker = _invoker(tmp_path, runs, sleeps)
    invoker.submit("jobsync-worker", {"n": 1})
    invoker.close(wait=True)
    assert len(runs.events) == 3
    assert sleeps == [1.0, 2.0]
    assert not (tmp_path / "dead-letters.jsonl").exists()


def test_after_the_last_retry_the_event_becomes_a_dead_letter(tmp_path: Path) -> None:
    runs, sleeps = Runs(failures=99), []
    invoker = _invoker(tmp_path, runs, sleeps)
    invoker.submit("jobsync-worker", {"n": 7})
    invoker.close(wait=True)
    assert len(runs.events) == 3  # the first attempt and Lambda's two retries
    (letter,) = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert letter["function"] == "jobsync-worker"
    assert letter["event"] == {"n": 7}
    assert "attempt 3 broke" in letter["error"]
    assert letter["at"].endswith("Z")


def test_the_function_concurrency_bounds_parallel_runs(tmp_path: Path) -> None:
    inside, most, lock, release = [0], [0], threading.Lock(), threading.Event()

    def run(function: InvokableFunction, event: dict[str, Any]) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(5)
        with lock:
            inside[0] -= 1

    single = InvokableFunction(
        name="one", code_uri="functions/x/", handler="app.lambda_handler", timeout=5, concurrency=1
    )
    invoker = AsyncInvoker([single], tmp_path / "dead.jsonl", run=run, sleep=lambda _: None)
    for number in range(3):
        invoker.submit("one", {"n": number})
    release.set()
    invoker.close(wait=True)
    assert most[0] == 1


def test_background_hand_off_reaches_the_local_invoke_api_through_boto3(tmp_path: Path, monkeypatch) -> None:
    from jobsync import background
    from local.stack import ThreadedServer, free_port

    runs = Runs()
    invoker = _invoker(tmp_path, runs, [])
    server = ThreadedServer(create_app(invoker), free_port(), name="lambda-invoke")
    server.start()
    try:
        for name, value in {
            "AWS_ENDPOINT_URL_LAMBDA": server.url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(background, "invoker", background._invoke_async)
        background._lambda_client.cache_clear()
        assert background.hand_off("jobsync-worker", {"job_ids": ["a", "b"]}) is True
        assert runs.done.wait(60)  # generous: a loaded machine is slow, not broken
        assert runs.events == [{"job_ids": ["a", "b"]}]
        assert background.hand_off("no-such-function", {}) is False  # logged, not raised
    finally:
        background._lambda_client.cache_clear()
        invoker.close()
        server.close()


def test_payloads_over_lambdas_limit_are_refused_before_sending(handed_off) -> None:
    from jobsync import background

    with pytest.raises(ValueError):
        background.hand_off("jobsync-worker", {"blob": "x" * background.MAX_PAYLOAD_BYTES})
    assert handed_off.calls == []


def test_a_refused_hand_off_is_reported_not_raised(handed_off) -> None:
    from jobsync import background

    handed_off.refusing = True
    assert background.hand_off("jobsync-worker", {"n": 1}) is False
    handed_off.refusing = False
    assert background.hand_off("jobsync-worker", {"n": 2}) is True
    assert handed_off.to("jobsync-worker") == [{"n": 2}]


def test_template_functions_with_a_function_name_are_invokable() -> None:
    template = load_template()
    named = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function" and "FunctionName" in resource.get("Properties", {})
    }
    assert len(invokable_functions(template)) == len(named)
    for function in invokable_functions(template):
        assert function.name.startswith("jobsync-")
        assert function.concurrency >= 1
