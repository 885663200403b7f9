"""The digest a refresh compares with the lists: equal when an observation says what is stored, else not."""

from __future__ import annotations

from dataclasses import replace

from jobsync.domain.cost import HardwarePricing
from jobsync.domain.fingerprint import job_digest, observation_digest
from jobsync.domain.job import JobObservation, apply_observation, new_job
from jobsync.domain.status import JobStatus

PRICING = HardwarePricing(hardware_by_model={}, default_sku="gpu-h100")
RUNNING = JobObservation(
    "job-1",
    "replicate",
    JobStatus.RUNNING,
    "processing",
    kind="prediction",
    model="acme/trainer",
    created_at="2026-11-01T10:00:00.000000Z",
    started_at="2026-11-01T10:00:30.000000Z",
)


def test_an_observation_of_what_is_stored_has_its_digest():
    job = new_job(RUNNING, PRICING)
    assert apply_observation(job, RUNNING, PRICING) is None
    assert observation_digest(RUNNING) == job_digest(job)


def test_a_number_read_back_as_an_integer_has_the_same_digest():
    ended = replace(RUNNING, status=JobStatus.COMPLETED, predict_time=30.0, completed_at="2026-11-01T11:00:00Z")
    job = new_job(ended, PRICING)
    assert job_digest(replace(job, predict_time=30)) == observation_digest(ended)  # DynamoDB gives 30 back


def test_any_new_fact_or_status_changes_the_digest():
    job = new_job(RUNNING, PRICING)
    for changed in (
        replace(RUNNING, status=JobStatus.COMPLETED),
        replace(RUNNING, started_at="2026-11-01T10:00:31.000000Z"),
        replace(RUNNING, error_message="boom"),
        replace(RUNNING, model=None),  # left out: not a change for apply_observation, but a read to find out
    ):
        assert observation_digest(changed) != job_digest(job), changed


def test_an_unknown_status_has_no_digest():
    assert observation_digest(replace(RUNNING, status=None)) is None
