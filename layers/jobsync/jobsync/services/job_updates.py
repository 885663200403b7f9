"""The one write path for jobs: every source (poller, sync, webhook, inline progress) goes through here."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from jobsync import wiring
from jobsync.domain.errors import StoreUnavailable
from jobsync.domain.job import Job, JobObservation, apply_observation, new_job
from jobsync.domain.status import JobStatus, may_move
from jobsync.observability import logger
from jobsync.services.kept_logs import keep_logs
from jobsync.store.dynamo import ConcurrentUpdate
from jobsync.store.jobs import TRANSACTION_JOBS

_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class UpdateOutcome:
    job: Job
    created: bool
    changed: bool
    previous_status: JobStatus | None

    @property
    def status_changed(self) -> bool:
        return self.created or (self.changed and self.previous_status != self.job.status)


class _Unread:
    """Marks `current` as not read yet (None already means: no such job)."""


_UNREAD = _Unread()


def record_observation(observation: JobObservation, current: Job | None | _Unread = _UNREAD) -> UpdateOutcome:
    """Apply what the provider said to the stored job (creating it when unknown).

    `current` saves a read when the caller already holds the stored job. A
    concurrent writer makes the save fail; the job is then read again and the
    observation re-applied, so no update is ever lost.
    """
    store = wiring.job_store()
    if observation.status is None:
        logger.warning(
            "unknown provider status leaves the job as it is",
            extra={"job_id": observation.job_id, "provider_status": observation.provider_status},
        )
    for attempt in range(_MAX_ATTEMPTS):
        job = store.get(observation.job_id) if isinstance(current, _Unread) else current
        if job is None:
            candidate = new_job(observation, wiring.pricing())
        else:
            applied = apply_observation(job, observation, wiring.pricing())
            if applied is None:
                _keep_logs(observation, job)
                return UpdateOutcome(job=job, created=False, changed=False, previous_status=job.status)
            candidate = applied
        try:
            stored = store.save(candidate, job)
        except ConcurrentUpdate:
            current = _UNREAD
            # Writers that collided would collide again at once: spread them out.
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
            continue
        _keep_logs(observation, job)
        _log_change(stored, job)
        return UpdateOutcome(job=stored, created=job is None, changed=True, previous_status=job.status if job else None)
    raise StoreUnavailable(f"job {observation.job_id} kept changing under us; try again")


@dataclass(frozen=True)
class Change:
    """A stored job, what the provider said of it, and the job after that (apply_observation's answer)."""

    current: Job
    observation: JobObservation
    changed: Job


# Batches that collided are read again and retried this many times before their jobs go one by one.
_BATCH_ATTEMPTS = 3


def record_changes(changes: list[Change]) -> list[UpdateOutcome]:
    """Store many changed jobs, 99 to a transaction (one request instead of one per job).

    A batch in which some job changed meanwhile (a webhook won the race), or that collided with
    another transaction, is read again (one BatchGetItem), re-applied and retried; after
    _BATCH_ATTEMPTS its jobs go one by one through `record_observation`, so no update is lost.
    Returns one outcome per stored change (an observation that no longer changes anything is left out).
    """
    outcomes: list[UpdateOutcome] = []
    for start in range(0, len(changes), TRANSACTION_JOBS):
        outcomes += _record_batch(changes[start : start + TRANSACTION_JOBS])
    return outcomes


def _record_batch(batch: list[Change]) -> list[UpdateOutcome]:
    store = wiring.job_store()
    # Before the jobs: a job stored as ended has its fetched logs kept already.
    for change in batch:
        _keep_logs(change.observation, change.current)
    for attempt in range(_BATCH_ATTEMPTS):
        if not batch:
            return []
        try:
            stored = store.save_together([(change.changed, change.current) for change in batch])
        except ConcurrentUpdate:
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
            batch = _reapplied(batch, store.get_many(change.current.job_id for change in batch))
            continue
        outcomes = []
        for change, job in zip(batch, stored, strict=True):
            _log_change(job, change.current)
            outcomes.append(UpdateOutcome(job=job, created=False, changed=True, previous_status=change.current.status))
        return outcomes
    return [outcome for change in batch if (outcome := record_observation(change.observation)).changed]


def _reapplied(batch: list[Change], stored: dict[str, Job]) -> list[Change]:
    """The batch's observations applied again to the jobs as stored now; those that change nothing any more drop out."""
    again = []
    for change in batch:
        current = stored.get(change.current.job_id)
        if current is None:  # deleted meanwhile (never, today): the one-by-one path creates it again
            again.append(change)
            continue
        changed = apply_observation(current, change.observation, wiring.pricing())
        if changed is not None:
            again.append(Change(current, change.observation, changed))
    return again


def create_jobs(observations: list[JobObservation]) -> int:
    """Store jobs the store does not know yet, 99 to a transaction (a first sync imports thousands).

    Should one of a batch appear meanwhile (a webhook won the race), that batch
    is stored job by job through `record_observation` instead. Returns how many were created.
    """
    created = 0
    for start in range(0, len(observations), TRANSACTION_JOBS):
        batch = observations[start : start + TRANSACTION_JOBS]
        try:
            wiring.job_store().create_together([new_job(observation, wiring.pricing()) for observation in batch])
        except ConcurrentUpdate:
            created += sum(record_observation(observation).created for observation in batch)
            continue
        for observation in batch:
            _keep_logs(observation, None)
        created += len(batch)
    return created


def _keep_logs(observation: JobObservation, before: Job | None) -> None:
    """Keep the log tail, unless the observation is older than what we know (then its logs are too)."""
    if not observation.logs:
        return
    accepted = before is None or (observation.status is not None and may_move(before.status, observation.status))
    if accepted:
        keep_logs(observation.job_id, observation.logs)


def _log_change(stored: Job, previous: Job | None) -> None:
    # Counted as metrics by the callers, once per batch: EMF takes at most 100 values per flush.
    if previous is not None and previous.status != stored.status:
        logger.info(
            "job status changed",
            extra={"job_id": stored.job_id, "status": stored.status.value, "previous_status": previous.status.value},
        )
