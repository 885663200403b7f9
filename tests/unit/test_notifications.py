"""Which notifications a job change produces (services/notifications.py), and the webhook's message."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from jobsync.deadline import invocation_deadline
from jobsync.services.notifications import (
    COST_THRESHOLD_CROSSED,
    FRESH_SECONDS,
    JOB_ENDED,
    notifications_for,
)
from jobsync.services.webhook_delivery import DeliveryFailed, RetryPolicy, post_with_retries, webhook_message
from tests.conftest import LambdaContext

AT = datetime(2026, 11, 30, 9, 0, 0, tzinfo=timezone.utc)


def job(status: str, **facts) -> dict:
    record = {
        "job_id": "abc123",
        "provider": "replicate",
        "status": status,
        "kind": "training",
        "model": "owner/flux-lora",
        "created_at": "2026-11-30T08:00:00Z",
        "started_at": "2026-11-30T08:01:00Z",
        "version": 3,
    }
    record.update(facts)
    return record


ENDED = {
    "completed_at": "2026-11-30T08:59:00.5Z",
    "predict_time": 3540.5,
    "cost_usd": 5.40,
    "hardware_type": "gpu-h100",
}


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_job_that_ends_produces_one_job_ended(status: str) -> None:
    (found,) = notifications_for(job(status, **ENDED), job("running"), at=AT)
    assert found.type == JOB_ENDED
    assert found.event_id == "abc123#ended"
    assert found.previous_status == "running"
    payload = found.payload()
    assert payload["status"] == status and payload["job_id"] == "abc123" and payload["model"] == "owner/flux-lora"
    assert payload["duration_seconds"] == 3480.5
    assert payload["cost_usd"] == 5.40
    assert payload["at"] == "2026-11-30T09:00:00.000000Z"


@pytest.mark.parametrize("status", ["pending", "queued", "running"])
def test_active_changes_produce_nothing(status: str) -> None:
    assert notifications_for(job(status), job("pending"), at=AT) == []


def test_a_write_to_an_ended_job_produces_nothing_more() -> None:
    # A later write (a kept log tail, a filled-in fact) or a replay of the same final state.
    assert notifications_for(job("completed", **ENDED), job("completed", **ENDED), at=AT) == []
    assert notifications_for(job("completed", **ENDED, output_url="x"), job("completed", **ENDED), at=AT) == []


def test_a_job_first_seen_ended_is_news_only_when_it_ended_recently() -> None:
    fresh = notifications_for(job("failed", **ENDED), {}, at=AT)
    assert [n.type for n in fresh] == [JOB_ENDED] and fresh[0].previous_status is None
    ended = datetime(2026, 11, 30, 8, 59, 0, 500000, tzinfo=timezone.utc)
    just_in = ended + timedelta(seconds=FRESH_SECONDS)
    assert len(notifications_for(job("failed", **ENDED), {}, at=just_in)) == 1
    # A history import: jobs that ended long ago are not announced.
    assert notifications_for(job("failed", **ENDED), {}, at=just_in + timedelta(seconds=1)) == []
    assert notifications_for(job("completed", created_at="2026-01-01T00:00:00Z"), {}, at=AT) == []


def test_removals_and_items_that_are_not_jobs_produce_nothing() -> None:
    assert notifications_for({}, job("running"), at=AT) == []
    assert notifications_for({"pk": "metrics#jobs", "count": 3}, {}, at=AT) == []


def test_the_cost_threshold_is_crossed_once() -> None:
    found = notifications_for(job("completed", **ENDED), job("running"), at=AT, cost_threshold_usd=5)
    assert [n.type for n in found] == [JOB_ENDED, COST_THRESHOLD_CROSSED]
    crossed = found[1]
    assert crossed.event_id == "abc123#cost>=5"
    assert crossed.payload()["cost_threshold_usd"] == 5
    # Already past it before this write: nothing new.
    before = job("running", cost_usd=5.0)
    assert notifications_for(job("running", cost_usd=7.0), before, at=AT, cost_threshold_usd=5) == []
    # Under it, or no threshold: nothing.
    assert notifications_for(job("running", cost_usd=4.99), job("running"), at=AT, cost_threshold_usd=5) == []
    assert [n.type for n in notifications_for(job("completed", **ENDED), job("running"), at=AT)] == [JOB_ENDED]


def test_a_running_job_that_reaches_the_threshold_says_so() -> None:
    (found,) = notifications_for(
        job("running", cost_usd=12.5), job("running", cost_usd=9.0), at=AT, cost_threshold_usd=10
    )
    assert found.type == COST_THRESHOLD_CROSSED and found.job.status.value == "running"
    assert found.subject() == "jobsync: owner/flux-lora cost $12.50 (threshold $10)"


def test_the_job_url_is_the_dashboards_job_page() -> None:
    (found,) = notifications_for(job("completed", **ENDED), job("running"), at=AT, dashboard_url="https://d.example/")
    assert found.payload()["job_url"] == "https://d.example/#/jobs/abc123"
    (local,) = notifications_for(
        job("completed", **ENDED), job("running"), at=AT, dashboard_url="http://127.0.0.1:8001/#token=x"
    )
    assert local.job_url == "http://127.0.0.1:8001/#/jobs/abc123"  # never a token in a message
    (bare,) = notifications_for(job("completed", **ENDED), job("running"), at=AT)
    assert bare.job_url is None


def test_the_webhook_message_is_slack_json_with_the_fields() -> None:
    (found,) = notifications_for(
        job("failed", **ENDED, error_message="CUDA out of memory"),
        job("running"),
        at=AT,
        dashboard_url="https://d.example",
    )
    message = webhook_message(found.payload())
    assert message["text"].startswith(":x: Job `abc123` (owner/flux-lora) failed after 58m 0s, cost $5.40.")
    assert "<https://d.example/#/jobs/abc123|Open the job>" in message["text"]
    fields = [field["text"] for field in message["blocks"][1]["fields"]]
    assert fields == [
        "*Job*\n`abc123`",
        "*Model*\nowner/flux-lora",
        "*Status*\nfailed",
        "*Duration*\n58m 0s",
        "*Cost*\n$5.40",
        "*Error*\nCUDA out of memory",
    ]
    # Receivers other than Slack get the event's own fields too.
    assert message["job_id"] == "abc123" and message["status"] == "failed" and message["cost_usd"] == 5.40


def test_the_retry_policy_doubles_its_wait_up_to_a_cap_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=6, first_wait=1.0, max_wait=8.0)
    assert [policy.wait_before(n) for n in range(2, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.wait_before(2, retry_after=3.0) == 3.0
    assert policy.wait_before(2, retry_after=600.0) == 8.0  # never past the cap


# ---- posting with retries: a fake endpoint (httpx MockTransport) and an injected sleeper ----------------


class Endpoint:
    """Answers each POST with the next of `answers` (a status, or an exception to raise), then 200."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, tuple):
            status, headers = answer
            return httpx.Response(status, headers=headers)
        return httpx.Response(answer)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def post(endpoint: Endpoint, policy: RetryPolicy | None = None) -> tuple[list, list[float]]:
    slept: list[float] = []
    attempts = post_with_retries(
        "https://hooks.example.test/x",
        {"text": "hi"},
        client=endpoint.client(),
        policy=policy or RetryPolicy(),
        sleep=slept.append,
    )
    return attempts, slept


def test_passing_failures_are_tried_again_after_a_doubling_wait() -> None:
    endpoint = Endpoint(503, httpx.ConnectTimeout("slow"), 200)
    attempts, slept = post(endpoint)
    assert [a.status for a in attempts] == [503, None, 200]
    assert attempts[1].error == "ConnectTimeout"
    assert slept == [1.0, 2.0]
    assert endpoint.bodies == [{"text": "hi"}] * 3


def test_every_try_failing_raises_with_what_each_answered_and_no_wait_after_the_last() -> None:
    endpoint = Endpoint(500, 502, httpx.ReadError("reset"))
    slept: list[float] = []
    with pytest.raises(DeliveryFailed, match="answered 500, 502, ReadError"):
        post_with_retries("https://h.example/x", {}, client=endpoint.client(), sleep=slept.append)
    assert slept == [1.0, 2.0]


def test_a_retry_after_is_honoured_up_to_the_cap() -> None:
    _, slept = post(Endpoint((429, {"Retry-After": "5"}), (429, {"Retry-After": "120"}), 200))
    assert slept == [5.0, 8.0]


@pytest.mark.parametrize("refusal", [400, 403, 404, 410])
def test_a_refusal_is_not_tried_again(refusal: int) -> None:
    endpoint = Endpoint(refusal)
    with pytest.raises(DeliveryFailed, match=str(refusal)):
        post(endpoint)
    assert len(endpoint.bodies) == 1


def test_no_wait_is_taken_that_leaves_no_time_for_a_try_before_the_deadline(invocation_clock) -> None:
    endpoint = Endpoint(503, 200)
    policy = RetryPolicy(attempts=3, first_wait=1.0, timeout=5.0)
    # 8 s left: 6 s usable (2 s reserve) ≥ 1 s wait + 5 s timeout → the retry is made.
    with invocation_deadline(LambdaContext(remaining_ms=8_000)):
        attempts, slept = post(endpoint, policy)
    assert [a.status for a in attempts] == [503, 200] and slept == [1.0]
    # 7.9 s left: 5.9 s usable < 6 s → no retry; Lambda's own retry comes later.
    endpoint = Endpoint(503, 200)
    with invocation_deadline(LambdaContext(remaining_ms=7_900)), pytest.raises(DeliveryFailed):
        post(endpoint, policy)
    assert len(endpoint.bodies) == 1


def test_an_invalid_url_fails_without_quoting_it() -> None:
    with pytest.raises(DeliveryFailed) as failure:
        post_with_retries("https://hooks.example.test/sec\x00ret", {}, client=Endpoint().client(), sleep=lambda s: None)
    assert "sec" not in str(failure.value) and failure.value.__cause__ is None and failure.value.__suppress_context__
