"""job_updates.record_changes: many changed jobs, 99 to a transaction; a batch that lost a race is read
again and retried, then stored job by job, so no update is lost. The store is a stand-in here: what is
under test is the batching, not DynamoDB (the handler tests run it under moto)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsync.domain.cost import HardwarePricing
from jobsync.domain.job import Job, JobObservation, apply_observation, new_job
from jobsync.domain.status import JobStatus
from jobsync.services import job_updates
from jobsync.store.dynamo import ConcurrentUpdate

PRICING = HardwarePricing(hardware_by_model={}, default_sku="gpu-h100")


def running(job_id: str) -> JobObservation:
    return JobObservation(job_id, "replicate", JobStatus.RUNNING, "processing", kind="prediction")


class Store:
    """Jobs by id; save_together as the real one: all or nothing, conditional on each version."""

    def __init__(self, jobs: list[Job], collide: int = 0) -> None:
        self.jobs = {job.job_id: job for job in jobs}
        self.batches: list[int] = []
        self.collide = collide  # how many save_together calls meet another writer first

    def get_many(self, job_ids):
        return {job_id: self.jobs[job_id] for job_id in job_ids if job_id in self.jobs}

    def get(self, job_id):
        return self.jobs.get(job_id)

    def save_together(self, changes):
        self.batches.append(len(changes))
        if self.collide:
            self.collide -= 1
            raise ConcurrentUpdate()
        if any(self.jobs[previous.job_id].version != previous.version for _, previous in changes):
            raise ConcurrentUpdate()
        stored = [replace(job, version=previous.version + 1) for job, previous in changes]
        self.jobs.update({job.job_id: job for job in stored})
        return stored

    def save(self, job, previous):
        return self.save_together([(job, previous)])[0]


@pytest.fixture
def store(monkeypatch):
    def install(jobs: list[Job], collide: int = 0) -> Store:
        fake = Store(jobs, collide)
        monkeypatch.setattr(job_updates.wiring, "job_store", lambda: fake)
        monkeypatch.setattr(job_updates.wiring, "pricing", lambda: PRICING)
        monkeypatch.setattr(job_updates.time, "sleep", lambda seconds: None)
        return fake

    return install


def queued_jobs(count: int) -> list[Job]:
    observations = [replace(running(f"job-{n:03d}"), status=JobStatus.QUEUED) for n in range(count)]
    return [replace(new_job(observation, PRICING), version=1) for observation in observations]


def changes_for(jobs: list[Job]) -> list[job_updates.Change]:
    changes = []
    for job in jobs:
        changed = apply_observation(job, running(job.job_id), PRICING)
        assert changed is not None
        changes.append(job_updates.Change(job, running(job.job_id), changed))
    return changes


def test_changes_are_written_99_to_a_transaction(store):
    jobs = queued_jobs(150)
    fake = store(jobs)

    outcomes = job_updates.record_changes(changes_for(jobs))

    assert fake.batches == [99, 51]
    assert len(outcomes) == 150 and all(outcome.changed for outcome in outcomes)
    assert {job.status for job in fake.jobs.values()} == {JobStatus.RUNNING}


def test_a_batch_that_collided_is_read_again_and_retried(store):
    jobs = queued_jobs(5)
    fake = store(jobs, collide=1)

    outcomes = job_updates.record_changes(changes_for(jobs))

    assert fake.batches == [5, 5] and len(outcomes) == 5
    assert {job.version for job in fake.jobs.values()} == {2}


def test_a_job_another_writer_moved_on_drops_out_and_the_rest_is_written(store):
    jobs = queued_jobs(3)
    fake = store(jobs)
    changes = changes_for(jobs)
    ended = replace(jobs[0], status=JobStatus.COMPLETED, version=2)  # a webhook got there first
    fake.jobs[ended.job_id] = ended

    outcomes = job_updates.record_changes(changes)

    assert fake.jobs[ended.job_id] == ended  # the end stands: running would move it backwards
    assert sorted(outcome.job.job_id for outcome in outcomes) == ["job-001", "job-002"]
    assert fake.batches == [3, 2]


def test_a_batch_that_keeps_colliding_goes_job_by_job(store):
    jobs = queued_jobs(4)
    fake = store(jobs, collide=3)  # every batch attempt collides

    outcomes = job_updates.record_changes(changes_for(jobs))

    assert fake.batches == [4, 4, 4, 1, 1, 1, 1] and len(outcomes) == 4
    assert {job.status for job in fake.jobs.values()} == {JobStatus.RUNNING}
