"""A job's status history: transitions oldest first, at the provider's times where it gives them, bounded."""

from __future__ import annotations

from dataclasses import replace

from jobsync.api.models import JobDetailOut, JobWithHistoryOut
from jobsync.domain.cost import HardwarePricing
from jobsync.domain.history import MAX_HISTORY, Transition
from jobsync.domain.job import Job, JobObservation, apply_observation, new_job
from jobsync.domain.status import JobStatus

PRICING = HardwarePricing()
CREATED, STARTED, COMPLETED = "2026-11-01T10:00:00.000000Z", "2026-11-01T10:02:00.5Z", "2026-11-01T10:30:00Z"
SEEN, LATER = "2026-11-30T08:00:00.000000Z", "2026-11-30T08:00:30.000000Z"
ENDED = "2026-11-30T09:00:00Z"


def observed(status: JobStatus | None, **facts) -> JobObservation:
    return JobObservation(
        job_id="j1", provider="replicate", status=status, provider_status=status.value if status else "?", **facts
    )


def pairs(job: Job) -> list[tuple[str, str | None]]:
    return [(transition.status.value, transition.at) for transition in job.status_history]


def test_a_new_job_starts_its_history_at_the_providers_time():
    job = new_job(observed(JobStatus.QUEUED, created_at=CREATED), PRICING, seen_at=SEEN)
    assert pairs(job) == [("queued", CREATED)]


def test_each_transition_is_added_once_at_the_providers_time_or_when_seen():
    job = new_job(observed(JobStatus.QUEUED, created_at=CREATED), PRICING, seen_at=SEEN)
    running = apply_observation(job, observed(JobStatus.RUNNING, created_at=CREATED), PRICING, seen_at=LATER)
    assert pairs(running) == [("queued", CREATED), ("running", LATER)]  # no started_at: when jobsync saw it
    # The same status again (facts filled in, or a replay) adds nothing to the history.
    again = apply_observation(running, observed(JobStatus.RUNNING, started_at=STARTED), PRICING, seen_at=LATER)
    assert pairs(again) == pairs(running)
    assert apply_observation(again, observed(JobStatus.RUNNING, started_at=STARTED), PRICING) is None
    done = apply_observation(again, observed(JobStatus.COMPLETED, completed_at=ENDED), PRICING, seen_at=SEEN)
    assert pairs(done) == [("queued", CREATED), ("running", LATER), ("completed", "2026-11-30T09:00:00.000000Z")]


def test_a_stale_or_backward_observation_leaves_the_history_alone():
    job = new_job(observed(JobStatus.RUNNING, created_at=CREATED, started_at=STARTED), PRICING, seen_at=SEEN)
    assert apply_observation(job, observed(JobStatus.QUEUED), PRICING, seen_at=LATER) is None
    ended = apply_observation(job, observed(JobStatus.CANCELLED), PRICING, seen_at=LATER)
    assert apply_observation(ended, observed(JobStatus.FAILED), PRICING, seen_at=LATER) is None
    assert [status for status, _ in pairs(ended)] == ["queued", "running", "cancelled"]


def test_a_job_first_seen_ended_gets_the_steps_its_timestamps_prove():
    job = new_job(
        observed(JobStatus.COMPLETED, created_at=CREATED, started_at=STARTED, completed_at=COMPLETED),
        PRICING,
        seen_at=SEEN,
    )
    assert pairs(job) == [
        ("queued", CREATED),
        ("running", "2026-11-01T10:02:00.500000Z"),
        ("completed", "2026-11-01T10:30:00.000000Z"),
    ]
    # Cancelled before it ever started (Replicate's `aborted`): no running step is invented.
    aborted = new_job(observed(JobStatus.CANCELLED, created_at=CREATED), PRICING, seen_at=SEEN)
    assert pairs(aborted) == [("queued", CREATED), ("cancelled", SEEN)]


def test_a_jump_over_a_status_records_it_only_when_the_provider_proves_it():
    queued = new_job(observed(JobStatus.QUEUED, created_at=CREATED), PRICING, seen_at=SEEN)
    failed = apply_observation(queued, observed(JobStatus.FAILED), PRICING, seen_at=LATER)
    assert pairs(failed) == [("queued", CREATED), ("failed", LATER)]
    done = apply_observation(
        queued, observed(JobStatus.COMPLETED, started_at=STARTED, completed_at=COMPLETED), PRICING, seen_at=LATER
    )
    assert [status for status, _ in pairs(done)] == ["queued", "running", "completed"]


def test_history_never_runs_backwards_in_time():
    # Our clock saw it running after the provider's clock says it completed (clock skew): the steps keep the
    # order they happened in.
    job = new_job(observed(JobStatus.RUNNING, created_at=CREATED), PRICING, seen_at=SEEN)
    done = apply_observation(job, observed(JobStatus.COMPLETED, completed_at=COMPLETED), PRICING, seen_at=LATER)
    times = [at for _, at in pairs(done)]
    assert times == sorted(times)
    assert times[-1] == SEEN


def test_a_job_stored_before_histories_were_kept_derives_one():
    legacy = Job.from_record(
        {
            "job_id": "old",
            "provider": "replicate",
            "status": "failed",
            "created_at": CREATED,
            "started_at": STARTED,
            "completed_at": COMPLETED,
        }
    )
    assert legacy.history == ()
    assert [status for status, _ in pairs(legacy)] == ["queued", "running", "failed"]
    # With no time for its status at all, the latest time the job carries stands in.
    no_end = Job.from_record({"job_id": "old2", "provider": "replicate", "status": "failed", "created_at": CREATED})
    assert pairs(no_end) == [("queued", CREATED), ("failed", CREATED)]
    bare = Job.from_record({"job_id": "old3", "provider": "replicate", "status": "pending"})
    assert pairs(bare) == [("pending", None)]
    # Its first stored change keeps the derived steps and adds the new one.
    running = Job.from_record({"job_id": "old4", "provider": "replicate", "status": "queued", "created_at": CREATED})
    moved = apply_observation(running, observed(JobStatus.RUNNING, started_at=STARTED), PRICING, seen_at=SEEN)
    assert [status for status, _ in pairs(moved)] == ["queued", "running"]
    assert moved.history == moved.status_history


def test_history_survives_the_store_round_trip_and_is_bounded():
    job = new_job(observed(JobStatus.RUNNING, created_at=CREATED), PRICING, seen_at=SEEN)
    assert Job.from_record(job.to_record()) == job
    long = replace(job, history=tuple(Transition(JobStatus.QUEUED, SEEN) for _ in range(MAX_HISTORY)))
    done = apply_observation(long, observed(JobStatus.COMPLETED), PRICING, seen_at=LATER)
    assert len(done.history) == MAX_HISTORY
    assert done.history[-1] == Transition(JobStatus.COMPLETED, LATER)


def test_the_detail_shape_carries_the_history_oldest_first():
    job = new_job(observed(JobStatus.RUNNING, created_at=CREATED, started_at=STARTED), PRICING, seen_at=SEEN)
    shape = JobDetailOut(job=JobWithHistoryOut.from_job(job)).model_dump(mode="json")
    assert shape["job"]["history"] == [
        {"status": "queued", "at": CREATED},
        {"status": "running", "at": "2026-11-01T10:02:00.500000Z"},
    ]
    assert shape["job"]["status"] == "running"
