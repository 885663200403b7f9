"""One page of a provider's job list taken in: new jobs stored, known ones updated (sync and history import)."""

from __future__ import annotations

from dataclasses import dataclass

from jobsync import wiring
from jobsync.domain.job import Job, JobObservation
from jobsync.providers.base import ProviderClient
from jobsync.services.job_updates import create_jobs, record_observation
from jobsync.services.refresh import with_final_logs


@dataclass(frozen=True)
class PageOutcome:
    created: int
    updated: int
    # Every job of the page was already stored and ended: a walk for new jobs can stop here.
    known_and_ended: bool
    # Every job of the page was already stored (some may be active): nothing newer than it is below it.
    all_known: bool = False


def import_page(client: ProviderClient, observations: list[JobObservation], seen: set[str]) -> PageOutcome:
    """Store a page's new jobs and update its known ones; `seen` (ids taken in this run) is updated.

    A job listed twice (in one page, or in both lists: a training also shows as a prediction) is
    taken once per run, the first time.
    """
    stored = wiring.job_store().get_many(observation.job_id for observation in observations)
    all_known = bool(observations) and all(observation.job_id in stored for observation in observations)
    known_and_ended = all_known and all(stored[observation.job_id].is_terminal for observation in observations)
    fresh = list({o.job_id: o for o in observations if o.job_id not in seen}.values())
    seen.update(observation.job_id for observation in fresh)
    created = create_jobs([observation for observation in fresh if observation.job_id not in stored])
    updated = sum(
        _update_one(client, observation, stored[observation.job_id])
        for observation in fresh
        if observation.job_id in stored
    )
    return PageOutcome(created, updated, known_and_ended, all_known)


def _update_one(client: ProviderClient, observation: JobObservation, stored: Job) -> int:
    return int(record_observation(with_final_logs(client, stored, observation), current=stored).changed)
