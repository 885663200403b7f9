"""Metrics, validation, config, OpenAPI and the token check."""

from __future__ import annotations

import json
import threading

import pytest

from jobsync import wiring
from jobsync.api.routes import ROUTES
from jobsync.domain.job import JobObservation
from jobsync.domain.status import JobStatus
from jobsync.services.job_updates import record_observation
from tests.conftest import API_TOKEN, LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_sync_and_listing import stamp


def test_metrics_count_every_job_and_sum_the_cost(api, replicate, monkeypatch):
    monkeypatch.setenv("JOBSYNC_HARDWARE_MAP", '{"acme/sdxl": "gpu-a40-large"}')
    wiring.reset()
    replicate.add(replicate_job("succeeded", created_at=stamp(1), predict_time=100.0))
    replicate.add(replicate_job("succeeded", created_at=stamp(2), predict_time=100.0, model="acme/sdxl"))
    replicate.add(replicate_job("failed", created_at=stamp(3), predict_time=10.0))
    running = replicate.add(replicate_job("processing", created_at=stamp(4)))
    replicate.add(replicate_job("starting", created_at=stamp(5)), kind="training")
    api.call("sync_jobs")
    replicate.update(running["id"], status="canceled", metrics={"predict_time": 20.0})
    api.call("sync_jobs")

    status, metrics = api.call("metrics")

    assert status == 200
    assert metrics["job_count"] == 5 and metrics["active_count"] == 1
    assert metrics["jobs_by_status"] == {
        "pending": 0,
        "uploading": 0,
        "queued": 1,
        "running": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
    }
    assert metrics["total_cost_usd"] == pytest.approx(0.1525 + 0.0725 + 0.01525 + 0.0305)


def test_a_writer_that_lost_a_race_rereads_and_loses_nothing(tables, replicate, monkeypatch):
    """Two writers read the same version; the second to save must not overwrite the first's facts."""
    record_observation(JobObservation("race", "replicate", JobStatus.QUEUED, "starting"))
    store = wiring.job_store()
    real_save, saves = store.save, []

    def save_after_another_writer(job, previous):
        saves.append(job)
        if len(saves) == 1:  # between our read and our write, a webhook stores what it knows
            record_observation(
                JobObservation("race", "replicate", JobStatus.RUNNING, "processing", started_at=stamp(1))
            )
        return real_save(job, previous)

    monkeypatch.setattr(store, "save", save_after_another_writer)
    outcome = record_observation(JobObservation("race", "replicate", JobStatus.RUNNING, "processing", model="acme/x"))

    job = store.get("race")
    assert outcome.changed and len(saves) == 3  # ours, the webhook's, ours again after re-reading
    assert (job.status, job.started_at, job.model) == (JobStatus.RUNNING, stamp(1), "acme/x")
    counters = store.counters().by_status
    assert sum(counters.values()) == 1 and counters["running"] == 1


def test_concurrent_writers_in_threads_end_consistent(tables, replicate):
    record_observation(JobObservation("race", "replicate", JobStatus.QUEUED, "starting"))
    errors = []

    def write(status: JobStatus, facts: dict) -> None:
        try:
            record_observation(JobObservation("race", "replicate", status, status.value, **facts))
        except Exception as exc:  # reported below
            errors.append(exc)

    writers = [
        threading.Thread(target=write, args=(JobStatus.RUNNING, {"started_at": stamp(1)})),
        threading.Thread(target=write, args=(JobStatus.RUNNING, {"model": "acme/flux"})),
        threading.Thread(target=write, args=(JobStatus.COMPLETED, {"predict_time": 10.0})),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    job = wiring.job_store().get("race")
    assert errors == []
    assert job.status == JobStatus.COMPLETED and job.predict_time == 10.0
    counters = wiring.job_store().counters().by_status
    assert sum(counters.values()) == 1 and counters["completed"] == 1


def test_validate_reports_the_replicate_username(api, replicate):
    assert api.call("validate_provider") == (200, {"valid": True, "username": "acme", "error": None})


def test_validate_reports_a_refused_token_without_failing(api, replicate):
    replicate.token = "r8_other"
    status, body = api.call("validate_provider")
    assert status == 200 and body["valid"] is False and "authentication token" in body["error"]
    assert "r8_test_token" not in body["error"]


def test_validate_reports_an_unreachable_provider(api, replicate):
    replicate.fail_next("GET", "/account", *[503] * 6)
    body = api.call("validate_provider")[1]
    assert body["valid"] is False and body["error"].startswith("could not reach the provider")


def test_validate_without_a_token_says_so(api, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    wiring.reset()
    body = api.call("validate_provider")[1]
    assert body == {"valid": False, "username": None, "error": "REPLICATE_API_TOKEN is not set"}


def test_in_aws_the_token_comes_from_secrets_manager(api, replicate, monkeypatch):
    import boto3

    arn = boto3.client("secretsmanager").create_secret(Name="replicate", SecretString="r8_test_token")["ARN"]
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    monkeypatch.setenv("REPLICATE_API_TOKEN_SECRET_ARN", arn)
    wiring.reset()
    assert api.call("validate_provider")[1] == {"valid": True, "username": "acme", "error": None}


def test_an_unreadable_secret_is_reported_not_crashed(api, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    monkeypatch.setenv("REPLICATE_API_TOKEN_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone")
    wiring.reset()
    body = api.call("validate_provider")[1]
    assert body["valid"] is False and "ResourceNotFoundException" in body["error"]
    assert api.call("sync_jobs")[0] == 502


def test_config_tells_clients_where_to_connect(api, monkeypatch):
    monkeypatch.setenv("JOBSYNC_WEBHOOK_URL", "https://jobsync.example.test/api/webhooks/replicate")
    wiring.reset()
    assert api.call("service_config")[1] == {
        "websocket_url": "wss://ws.example.test/prod",
        "polling": {"enabled": False, "interval_seconds": 30},
        "webhooks": {"configured": True},
    }


def test_openapi_documents_every_route_with_its_auth(api):
    status, document = api.call("openapi")
    assert status == 200 and document["openapi"].startswith("3.")
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert bool(operation["security"]) is route.authenticated
    list_parameters = {p["name"] for p in document["paths"]["/api/cloud/jobs"]["get"]["parameters"]}
    assert list_parameters == {"limit", "provider", "status", "sync_active", "cursor"}
    job_schema = document["components"]["schemas"]["JobOut"]
    assert "cost_usd" in job_schema["properties"] and "version" not in job_schema["properties"]


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (f"Bearer {API_TOKEN}", 200),
        (f"bearer {API_TOKEN}", 200),
        ("Bearer nope", 401),
        (API_TOKEN, 401),
        (None, 401),
        ("Bearer ", 401),
    ],
)
def test_a_protected_route_checks_the_bearer_token_itself(tables, authorization, expected):
    event = load_event("metrics")
    # Whatever its case: API Gateway lower-cases header names, a direct invocation might not.
    event["headers"] = {"Authorization": authorization} if authorization else {}
    answer = load_handler("metrics")(event, LambdaContext())
    assert answer["statusCode"] == expected
    if expected == 401:
        assert json.loads(answer["body"])["error"] == "unauthorized"


def test_unexpected_errors_are_a_500_in_the_contract_shape_without_details(api, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(wiring.job_store(), "page", explode)
    status, body = api.call("list_jobs")
    assert status == 500 and body["error"] == "internal_error" and "secret" not in body["message"]


def test_what_no_route_serves_is_a_404_in_the_contract_shape(api):
    status, body = api.call("not_found", authenticated=False)
    assert status == 404
    assert body == {"error": "not_found", "message": "no route for DELETE /api/cloud/jobz"}
