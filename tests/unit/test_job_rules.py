"""The job model's rules: forward-only transitions, first terminal wins, unknown statuses ignored, cost."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobsync.api.models import JobOut
from jobsync.domain.cost import HardwarePricing, price_per_second
from jobsync.domain.job import Job, JobObservation, apply_observation, new_job
from jobsync.domain.status import ACTIVE_STATUSES, TERMINAL_STATUSES, JobStatus, may_move
from jobsync.domain.timestamps import parse_timestamp, sortable

PRICING = HardwarePricing()


def observed(status: JobStatus | None, **facts) -> JobObservation:
    return JobObservation(
        job_id="j1", provider="replicate", status=status, provider_status=status.value if status else "mystery", **facts
    )


def test_seven_statuses_split_into_active_and_terminal():
    assert [s.value for s in ACTIVE_STATUSES] == ["pending", "uploading", "queued", "running"]
    assert {s.value for s in TERMINAL_STATUSES} == {"completed", "failed", "cancelled"}
    assert all(s.is_active and not s.is_terminal for s in ACTIVE_STATUSES)
    assert all(s.is_terminal and not s.is_active for s in TERMINAL_STATUSES)


@pytest.mark.parametrize(
    ("current", "observed_status", "allowed"),
    [
        (JobStatus.PENDING, JobStatus.RUNNING, True),
        (JobStatus.QUEUED, JobStatus.QUEUED, True),
        (JobStatus.RUNNING, JobStatus.QUEUED, False),
        (JobStatus.RUNNING, JobStatus.COMPLETED, True),
        (JobStatus.COMPLETED, JobStatus.RUNNING, False),
        (JobStatus.COMPLETED, JobStatus.FAILED, False),
        (JobStatus.CANCELLED, JobStatus.CANCELLED, True),
    ],
)
def test_may_move_only_forward(current, observed_status, allowed):
    assert may_move(current, observed_status) is allowed


def test_unknown_status_changes_nothing_and_never_reopens():
    done = new_job(observed(JobStatus.COMPLETED, predict_time=10.0), PRICING)
    assert apply_observation(done, observed(None, predict_time=99.0), PRICING) is None
    assert new_job(observed(None), PRICING).status == JobStatus.PENDING


def test_provider_timestamps_are_kept_verbatim():
    stamp = "2024-09-10T05:10:35.195332906Z"
    job = new_job(observed(JobStatus.COMPLETED, created_at=stamp, started_at=stamp, completed_at=stamp), PRICING)
    assert (job.created_at, job.started_at, job.completed_at) == (stamp, stamp, stamp)


def test_terminal_job_only_gains_missing_facts():
    job = new_job(observed(JobStatus.COMPLETED, completed_at="2026-01-01T00:00:10Z"), PRICING)
    later = apply_observation(
        job, observed(JobStatus.COMPLETED, completed_at="2026-01-01T09:99Z", predict_time=100.0), PRICING
    )
    assert later.completed_at == "2026-01-01T00:00:10Z"
    assert later.cost_usd == pytest.approx(100 * 0.001525)


def test_same_observation_twice_is_no_change():
    job = new_job(observed(JobStatus.RUNNING, started_at="2026-01-01T00:00:00Z"), PRICING)
    assert apply_observation(job, observed(JobStatus.RUNNING, started_at="2026-01-01T00:00:00Z"), PRICING) is None


_ANY_STATUS = st.sampled_from(list(JobStatus) + [None])


@given(st.lists(_ANY_STATUS, min_size=1, max_size=8), st.randoms())
def test_any_order_of_updates_ends_in_the_same_place(statuses, random):
    """Forward-only: the result is the highest status seen, or the first terminal one to arrive."""
    shuffled = list(statuses)
    random.shuffle(shuffled)
    job = Job(job_id="j1", provider="replicate", status=JobStatus.PENDING)
    for status in shuffled:
        job = apply_observation(job, observed(status), PRICING) or job
        job = apply_observation(job, observed(status), PRICING) or job  # every update may arrive twice
    known = [status for status in shuffled if status is not None]
    terminal = [status for status in known if status.is_terminal]
    expected = terminal[0] if terminal else max(known + [JobStatus.PENDING], key=lambda s: s.rank)
    assert job.status == expected


@pytest.mark.parametrize(
    ("sku", "price"),
    [
        ("cpu", 0.0001),
        ("gpu-t4", 0.000225),
        ("gpu-a100-large", 0.0014),
        ("gpu-h100", 0.001525),
        ("gpu-2x-a100-large", 0.0028),
        ("gpu-8x-h100", 0.0122),
        ("gpu-h100-2x", 0.00305),
        ("gpu-a100-large-8x", 0.0112),
        ("gpu-2x-l40s", 0.00195),
        ("gpu-unknown", None),
        ("gpu-h100-0x", None),
    ],
)
def test_price_per_second(sku, price):
    assert price_per_second(sku) == (pytest.approx(price) if price else None)


def test_cost_uses_the_models_hardware_and_defaults_to_h100():
    pricing = HardwarePricing(hardware_by_model={"acme/sdxl": "gpu-a40-large"})
    sdxl = new_job(observed(JobStatus.COMPLETED, model="acme/sdxl", predict_time=200.0), pricing)
    flux = new_job(observed(JobStatus.COMPLETED, model="acme/flux", predict_time=200.0), pricing)
    assert (sdxl.hardware_type, sdxl.cost_usd) == ("gpu-a40-large", pytest.approx(0.145))
    assert (flux.hardware_type, flux.cost_usd) == ("gpu-h100", pytest.approx(0.305))
    assert new_job(observed(JobStatus.RUNNING), pricing).cost_usd is None


def test_api_shape_is_the_contracts():
    job = new_job(
        observed(
            JobStatus.COMPLETED,
            started_at="2026-01-01T00:00:00Z",
            completed_at="2026-01-01T00:01:30.5Z",
            predict_time=90.0,
        ),
        PRICING,
    )
    shape = JobOut.from_job(job).model_dump(mode="json")
    assert set(shape) == {
        "job_id",
        "provider",
        "status",
        "model",
        "model_version",
        "config_name",
        "created_at",
        "started_at",
        "completed_at",
        "cost_usd",
        "hardware_type",
        "error_message",
        "output_url",
        "is_active",
        "is_terminal",
        "duration_seconds",
        "price_per_second_usd",
    }
    assert shape["duration_seconds"] == 90.5 and shape["is_terminal"] and not shape["is_active"]
    assert shape["price_per_second_usd"] == 0.001525  # the default SKU's price, the one cost_usd used
    assert Job.from_record(replace(job, version=3).to_record()).version == 3


def test_the_model_version_is_a_fact_apart_from_the_lock_counter():
    job = new_job(observed(JobStatus.RUNNING, model_version="abc123"), PRICING)
    kept = Job.from_record(replace(job, version=7).to_record())
    assert (kept.model_version, kept.version) == ("abc123", 7)
    assert JobOut.from_job(kept).model_version == "abc123"
    # A job stored before versions were kept gets its version from the next observation that has one.
    older = replace(job, model_version=None)
    updated = apply_observation(older, observed(JobStatus.RUNNING, model_version="abc123"), PRICING)
    assert updated is not None and updated.model_version == "abc123"
    assert apply_observation(job, observed(JobStatus.RUNNING, model_version="abc123"), PRICING) is None


def test_timestamps_of_mixed_precision_sort_as_time():
    nano, micro = "2024-09-10T05:10:35.195332906Z", "2024-09-10T05:10:35.2Z"
    assert parse_timestamp(nano).microsecond == 195332
    assert sortable(nano) < sortable(micro)
    assert sortable("not a time") == "" and parse_timestamp(None) is None


def test_a_training_seen_in_the_predictions_list_stays_a_training():
    job = new_job(replace(observed(JobStatus.RUNNING), kind="training"), PRICING)
    assert apply_observation(job, replace(observed(JobStatus.RUNNING), kind="prediction"), PRICING) is None
    webhook_made = new_job(observed(JobStatus.RUNNING), PRICING)
    assert webhook_made.kind == "prediction"
    assert (
        apply_observation(webhook_made, replace(observed(JobStatus.RUNNING), kind="training"), PRICING).kind
        == "training"
    )


def test_an_unpriced_hardware_name_is_refused_at_start():
    from jobsync.config import ConfigError, settings_from_env

    with pytest.raises(ConfigError, match="gpu-h10"):
        settings_from_env({"JOBSYNC_HARDWARE_MAP": '{"acme/flux": "gpu-h10"}'})
    with pytest.raises(ConfigError, match="JOBSYNC_DEFAULT_HARDWARE"):
        settings_from_env({"JOBSYNC_DEFAULT_HARDWARE": "tpu"})
    assert settings_from_env({"JOBSYNC_HARDWARE_MAP": '{"acme/flux": "gpu-h100-2x"}'}).hardware_by_model
