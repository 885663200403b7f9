"""Inline progress and Replicate webhooks through real events."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from jobsync import wiring
from tests.conftest import load_event
from tests.fakes.replicate import replicate_job

TQDM = (
    "flux_train_replicate:  44%|████▍     | 440/1000 [05:00<06:21,  1.44it/s]\r"
    "flux_train_replicate:  45%|████▌     | 449/1000 [05:12<06:21,  1.44it/s, lr: 4.0e-04 loss: 2.472e-01]"
)


def test_inline_progress_of_a_running_job_from_its_logs(api, replicate):
    job = replicate.add(replicate_job("processing", logs="Loading dataset\nWarming up\n" + TQDM))
    api.call("sync_jobs")
    status, body = api.call("inline_progress", path={"job_id": job["id"]})
    assert status == 200
    assert body["job_id"] == job["id"] and body["stage"] == "Training"
    assert body["progress"] == pytest.approx(44.9) and body["last_log"].endswith("...") and len(body["last_log"]) == 80
    assert body["eta_seconds"] == 381


def test_inline_progress_asks_the_provider_at_most_once_per_interval(api, replicate):
    job = replicate.add(replicate_job("processing", logs="Step 10/100 - loss: 0.1"))
    api.call("sync_jobs")
    for _ in range(20):  # fifty dashboards polling at once share one provider request
        assert api.call("inline_progress", path={"job_id": job["id"]})[1]["progress"] == 10.0
    assert replicate.requests[("GET", f"/predictions/{job['id']}")] == 1


def test_inline_progress_sees_the_job_end_and_answers_nulls(api, replicate):
    job = replicate.add(replicate_job("processing", logs="Step 10/100"))
    api.call("sync_jobs")
    replicate.update(job["id"], status="succeeded", logs="Step 100/100\nSaving checkpoint")
    body = api.call("inline_progress", path={"job_id": job["id"]})[1]
    assert body == {"job_id": job["id"], "stage": None, "last_log": None, "progress": None, "eta_seconds": None}
    assert api.call("get_job", path={"job_id": job["id"]})[1]["job"]["status"] == "completed"


def test_inline_progress_keeps_working_from_the_stored_tail_when_the_provider_fails(api, replicate, monkeypatch):
    monkeypatch.setenv("JOBSYNC_LOG_REFRESH_SECONDS", "0")
    wiring.reset()
    job = replicate.add(replicate_job("processing", logs="Running validation"))
    api.call("sync_jobs")
    assert api.call("inline_progress", path={"job_id": job["id"]})[1]["stage"] == "Validation"
    replicate.fail_next("GET", f"/predictions/{job['id']}", *[500] * 6)
    assert api.call("inline_progress", path={"job_id": job["id"]})[1]["stage"] == "Validation"


def test_inline_progress_of_a_job_not_running_is_null_and_unknown_is_404(api, replicate):
    queued = replicate.add(replicate_job("starting"))
    api.call("sync_jobs")
    assert api.call("inline_progress", path={"job_id": queued["id"]})[1]["stage"] is None
    assert replicate.requests[("GET", f"/predictions/{queued['id']}")] == 0
    assert api.call("inline_progress", path={"job_id": "missing"})[0] == 404


# ---- webhooks -----------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"jobsync-test-webhook-secret-32by").decode()


@pytest.fixture
def webhook_secret(monkeypatch):
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", SECRET)
    wiring.reset()
    return SECRET


def signed(
    payload: dict,
    *,
    secret: str = SECRET,
    webhook_id: str = "msg_1",
    at: float | None = None,
    base64_body: bool = False,
) -> dict:
    """A webhook event signed by the official standardwebhooks package."""
    body = json.dumps(payload)
    moment = datetime.fromtimestamp(at or time.time(), tz=timezone.utc)
    event = load_event("replicate_webhook")
    event["headers"] = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, moment, body),
    }
    event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    return event


def deliver(api, event):
    return api.call("replicate_webhook", event=event, authenticated=False)


def test_a_signed_webhook_creates_an_unknown_job_before_answering(api, webhook_secret):
    payload = replicate_job("processing", job_id="hook1", logs="Step 5/50")
    status, body = deliver(api, signed(payload))
    assert status == 200 and body == {"received": True, "duplicate": False, "job_id": "hook1", "status": "running"}
    assert api.call("get_job", path={"job_id": "hook1"})[1]["job"]["status"] == "running"
    assert wiring.state_store().log_tail("hook1").text == "Step 5/50"


def test_a_base64_body_from_api_gateway_is_verified_on_its_raw_bytes(api, webhook_secret):
    status, body = deliver(api, signed(replicate_job("succeeded", job_id="b64"), base64_body=True))
    assert status == 200 and body["status"] == "completed"


@pytest.mark.parametrize("tamper", ["body", "secret", "stale", "future", "missing"])
def test_a_bad_signature_is_401_and_changes_nothing(api, webhook_secret, tamper):
    payload = replicate_job("succeeded", job_id="evil")
    if tamper == "secret":
        event = signed(payload, secret="whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode())
    elif tamper in ("stale", "future"):
        event = signed(payload, at=time.time() + (-301 if tamper == "stale" else 301))
    else:
        event = signed(payload)
    if tamper == "body":
        event["body"] = event["body"].replace("succeeded", "failed")
    if tamper == "missing":
        del event["headers"]["webhook-signature"]
    status, body = deliver(api, event)
    assert status == 401 and body["error"] == "unauthorized"
    assert api.call("get_job", path={"job_id": "evil"})[0] == 404


def test_a_replayed_webhook_is_accepted_and_changes_nothing_more(api, webhook_secret):
    deliver(api, signed(replicate_job("processing", job_id="r1"), webhook_id="msg_a"))
    deliver(api, signed(replicate_job("succeeded", job_id="r1", predict_time=10.0), webhook_id="msg_b"))
    status, body = deliver(api, signed(replicate_job("processing", job_id="r1"), webhook_id="msg_a"))
    assert status == 200 and body["duplicate"] is True
    assert api.call("get_job", path={"job_id": "r1"})[1]["job"]["status"] == "completed"


def test_a_late_webhook_never_reopens_a_finished_job(api, webhook_secret):
    deliver(api, signed(replicate_job("canceled", job_id="late"), webhook_id="msg_end"))
    deliver(api, signed(replicate_job("processing", job_id="late"), webhook_id="msg_start"))
    deliver(api, signed(replicate_job("failed", job_id="late", error="boom"), webhook_id="msg_other"))
    job = api.call("get_job", path={"job_id": "late"})[1]["job"]
    assert job["status"] == "cancelled" and job["error_message"] is None


def test_a_failed_webhook_keeps_the_providers_error(api, webhook_secret):
    deliver(api, signed(replicate_job("failed", job_id="oom", error="CUDA out of memory")))
    assert api.call("get_job", path={"job_id": "oom"})[1]["job"]["error_message"] == "CUDA out of memory"


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"status": "processing"}', "[" * 100_000 + "]" * 100_000, '{"id": 5}'],
    ids=["not-json", "list", "no-id", "deep-nesting", "numeric-id"],
)
def test_a_signed_but_malformed_body_is_400(api, webhook_secret, body):
    event = signed({})
    moment = datetime.now(timezone.utc)
    event["body"] = body
    event["headers"]["webhook-signature"] = Webhook(SECRET).sign("msg_1", moment, body)
    event["headers"]["webhook-timestamp"] = str(int(moment.timestamp()))
    status, answer = deliver(api, event)
    assert status == 400 and answer["error"] == "invalid_input"


def test_the_signing_secret_is_fetched_from_replicate_once_when_not_configured(api, replicate):
    for n in range(3):
        event = signed(replicate_job("processing", job_id=f"s{n}"), secret=replicate.secret, webhook_id=f"m{n}")
        assert deliver(api, event)[0] == 200
    assert replicate.requests[("GET", "/webhooks/default/secret")] == 1
