"""One page of a provider's job list taken in: new jobs stored, known ones updated (sync and history import)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jobsync import wiring
from jobsync.domain.job import Job, JobObservation
from jobsync.providers.base import ProviderClient
from jobsync.services.job_updates import create_jobs, record_observation
from jobsync.services.refresh import with_final_logs
from jobsync.store.jobs import TRANSACTION_JOBS


@dataclass(frozen=True)
class PageOutcome:
    created: int  # jobs stored by this call (with `new_jobs`, some may be an earlier page's)
    updated: int
    # Every job of the page was already stored and ended: a walk for new jobs can stop here.
    known_and_ended: bool
    # Every job of the page was already stored (some may be active): nothing newer than it is below it.
    all_known: bool = False
    new: int = 0  # the page's jobs not stored before (stored now, or waiting in `new_jobs`)


class NewJobs:
    """New jobs met page after page, written TRANSACTION_JOBS (99) to a transaction across pages.

    A transaction takes 100 actions: 99 jobs and the counter shard they move. Written page by page,
    a page of 100 new jobs cost two transactions (99 + 1); gathered across pages, a hundred such pages
    cost a hundred and one. A job waiting here is not stored yet: whoever saves a position in a list
    must keep it on the page of the oldest waiting job (or `flush` first), so that nothing is lost.
    """

    def __init__(self) -> None:
        self._waiting: list[JobObservation] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, observations: Iterable[JobObservation]) -> int:
        """Queue `observations` and write every full transaction; how many jobs were created."""
        self._waiting.extend(observations)
        whole = len(self._waiting) - len(self._waiting) % TRANSACTION_JOBS
        if not whole:
            return 0
        batch, self._waiting = self._waiting[:whole], self._waiting[whole:]
        return create_jobs(batch)

    def flush(self) -> int:
        """Write whatever waits; how many jobs were created."""
        batch, self._waiting = self._waiting, []
        return create_jobs(batch) if batch else 0


def import_page(
    client: ProviderClient, observations: list[JobObservation], seen: set[str], new_jobs: NewJobs | None = None
) -> PageOutcome:
    """Store a page's new jobs and update its known ones; `seen` (ids taken in this run) is updated.

    A job listed twice (in one page, or in both lists: a training also shows as a prediction) is
    taken once per run, the first time. With `new_jobs`, the page's new jobs join those waiting there
    and only full transactions are written; without, they are written now.
    """
    stored = wiring.job_store().get_many(observation.job_id for observation in observations)
    all_known = bool(observations) and all(observation.job_id in stored for observation in observations)
    known_and_ended = all_known and all(stored[observation.job_id].is_terminal for observation in observations)
    fresh = list({o.job_id: o for o in observations if o.job_id not in seen}.values())
    seen.update(observation.job_id for observation in fresh)
    new = [observation for observation in fresh if observation.job_id not in stored]
    created = new_jobs.add(new) if new_jobs is not None else create_jobs(new)
    updated = sum(
        _update_one(client, observation, stored[observation.job_id])
        for observation in fresh
        if observation.job_id in stored
    )
    return PageOutcome(created, updated, known_and_ended, all_known, new=len(new))


def _update_one(client: ProviderClient, observation: JobObservation, stored: Job) -> int:
    return int(record_observation(with_final_logs(client, stored, observation), current=stored).changed)
