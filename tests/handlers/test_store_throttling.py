"""DynamoDB throttling: retried with backoff, then a 503 that says when to come back, never a silent drop."""

from __future__ import annotations

import json

from botocore.awsrequest import AWSResponse

from tests.conftest import load_event, load_handler


class Throttled:
    """Answers every DynamoDB request as throttled, and counts them."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request, **kwargs):
        self.requests += 1
        body = json.dumps(
            {"__type": "ThrottlingException", "message": "Rate of requests exceeds the allowed throughput"}
        )
        return AWSResponse(request.url, 400, {"x-amzn-errortype": "ThrottlingException"}, _Raw(body.encode()))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def test_a_throttled_store_is_retried_with_backoff_then_answers_503_with_retry_after(api, monkeypatch):
    from jobsync.store import dynamo

    sleeps: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", sleeps.append)  # botocore's backoff, recorded
    throttled = Throttled()
    dynamo.client().meta.events.register_first("before-send.dynamodb.*", throttled)

    answer = load_handler("metrics")(_with_token(load_event("metrics")), api.context)

    assert answer["statusCode"] == 503
    assert json.loads(answer["body"])["error"] == "store_unavailable"
    assert int(answer["headers"]["retry-after"]) >= 1
    assert throttled.requests == 5  # the first try and four retries (store/dynamo.py: max_attempts=4)
    assert len(sleeps) == 4 and all(wait > 0 for wait in sleeps)


def _with_token(event: dict) -> dict:
    from tests.conftest import API_TOKEN

    event["headers"] = {**event.get("headers", {}), "authorization": f"Bearer {API_TOKEN}"}
    return event
