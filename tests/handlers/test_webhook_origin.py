"""Webhooks only through CloudFront: with JOBSYNC_ORIGIN_VERIFY_SECRET_ARN set, a webhook without the value
CloudFront adds (services/origin_verify.py) is 403 before its signature is checked, and changes nothing."""

from __future__ import annotations

import json

import boto3
import pytest

from jobsync import wiring
from tests.fakes.replicate import replicate_job
from tests.handlers.test_progress_and_webhooks import SECRET, deliver, signed

CURRENT = "cloudfront-adds-this-value-0123456789abcdefABCDEF"
PREVIOUS = "the-value-before-the-last-rotation-9876543210zyx"


@pytest.fixture
def webhook_secret(monkeypatch) -> str:
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", SECRET)
    wiring.reset()
    return SECRET


@pytest.fixture
def origin_secret(api, webhook_secret, monkeypatch) -> str:
    """The origin-verify secret in (moto's) Secrets Manager, as the template creates it; its ARN configured."""
    arn = boto3.client("secretsmanager").create_secret(
        Name="jobsync-origin-verify", SecretString=json.dumps({"current": CURRENT})
    )["ARN"]
    monkeypatch.setenv("JOBSYNC_ORIGIN_VERIFY_SECRET_ARN", arn)
    wiring.reset()
    return arn


def through_cloudfront(event: dict, value: str = CURRENT) -> dict:
    # CloudFront sends the header name as configured; API Gateway passes it on lowercased or not.
    event["headers"]["X-Jobsync-Origin-Verify"] = value
    return event


def stored(api, job_id: str) -> int:
    return api.call("get_job", path={"job_id": job_id})[0]


def put_secret(arn: str, document: dict) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(document))


def test_not_configured_every_signed_webhook_is_taken_as_before(api, webhook_secret):
    status, body = deliver(api, signed(replicate_job("processing", job_id="plain")))
    assert status == 200 and body["job_id"] == "plain"
    assert stored(api, "plain") == 200


@pytest.mark.parametrize("header", [None, "", "a-guess", CURRENT[:-1], CURRENT + "x", CURRENT.upper(), "é" * 8])
def test_without_the_value_cloudfront_adds_it_is_403_and_changes_nothing(api, origin_secret, header):
    event = signed(replicate_job("succeeded", job_id="direct"), webhook_id="msg_direct")
    if header is not None:
        through_cloudfront(event, header)
    status, body = deliver(api, event)
    assert status == 403
    assert body["error"] == "forbidden" and "CloudFront" in body["message"]
    assert CURRENT not in json.dumps(body)
    assert stored(api, "direct") == 404
    # Nothing was claimed either: the same delivery through CloudFront is applied, not taken for a replay.
    retry = through_cloudfront(signed(replicate_job("succeeded", job_id="direct"), webhook_id="msg_direct"))
    status, body = deliver(api, retry)
    assert status == 200 and body["duplicate"] is False and body["status"] == "completed"


def test_the_origin_is_checked_before_the_signature(api, origin_secret):
    forged = signed(replicate_job("succeeded", job_id="forged"), secret="whsec_" + "A" * 43)
    assert deliver(api, forged)[0] == 403
    assert deliver(api, through_cloudfront(forged))[0] == 401  # through CloudFront, the signature decides


def test_through_cloudfront_a_signed_webhook_is_applied(api, origin_secret):
    event = through_cloudfront(signed(replicate_job("processing", job_id="viacf", logs="Step 5/50")))
    event["headers"] = {key.lower(): value for key, value in event["headers"].items()}  # either case is read
    status, body = deliver(api, event)
    assert status == 200 and body == {"received": True, "duplicate": False, "job_id": "viacf", "status": "running"}
    assert stored(api, "viacf") == 200


def test_a_rotation_accepts_the_previous_value_until_it_is_dropped(api, origin_secret):
    def answer(job_id: str, value: str) -> int:
        event = signed(replicate_job("processing", job_id=job_id), webhook_id=f"msg_{job_id}")
        return deliver(api, through_cloudfront(event, value))[0]

    assert answer("r1", CURRENT) == 200
    new = "the-next-value-after-rotation-ABCDEFGHIJ0123456789"
    put_secret(origin_secret, {"current": new, "previous": CURRENT})
    # A warm instance keeps what it read (jobsync.secrets' max age): the new value is not known yet.
    assert answer("r2", new) == 403 and answer("r3", CURRENT) == 200
    wiring.reset()  # the cached read has expired
    assert answer("r4", new) == 200 and answer("r5", CURRENT) == 200  # CloudFront may still send the old one
    put_secret(origin_secret, {"current": new})  # CloudFront deployed: the old value is dropped
    wiring.reset()
    assert answer("r6", CURRENT) == 403 and answer("r7", new) == 200
    assert [stored(api, job_id) for job_id in ("r1", "r2", "r3", "r4", "r5", "r6", "r7")] == [
        200,
        404,
        200,
        200,
        200,
        404,
        200,
    ]


@pytest.mark.parametrize(
    "secret", [None, "not json", json.dumps({"current": ""}), json.dumps({"previous": CURRENT}), json.dumps([CURRENT])]
)
def test_an_unreadable_or_malformed_secret_is_503_and_changes_nothing(api, webhook_secret, monkeypatch, secret):
    if secret is None:
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"
    else:
        arn = boto3.client("secretsmanager").create_secret(Name="origin", SecretString=secret)["ARN"]
    monkeypatch.setenv("JOBSYNC_ORIGIN_VERIFY_SECRET_ARN", arn)
    wiring.reset()
    status, body = deliver(api, through_cloudfront(signed(replicate_job("succeeded", job_id="unsure"))))
    assert status == 503 and body["error"] == "origin_check_unavailable"
    assert CURRENT not in json.dumps(body)
    assert stored(api, "unsure") == 404
