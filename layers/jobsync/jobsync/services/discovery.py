"""Full sync: discover the provider's jobs (both lists) and update the ones already known.

Pages are read newest first until one holds only jobs already stored in a
terminal state (everything older was imported before), so the first sync
imports the whole history and later ones read a page or two.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.deadline import seconds_left
from jobsync.domain.job import Job, JobObservation
from jobsync.observability import count, logger
from jobsync.providers.base import ProviderClient, ProviderError
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import create_jobs, record_observation

_TRAININGS_FIRST = ("training", "prediction")
# Reading and storing one page of a hundred jobs: a page is not started with less time than this left.
_SECONDS_PER_PAGE = 5.0


@dataclass(frozen=True)
class DiscoveryReport:
    provider: str
    display_name: str
    discovered: int
    updated: int

    @property
    def message(self) -> str:
        return f"Discovered {self.discovered} new jobs from {self.display_name}"


def discover_jobs(provider: str) -> DiscoveryReport:
    """Raises ProviderError when the provider cannot be read; what was stored before that stays stored."""
    client = provider_client(provider)
    seen: set[str] = set()
    discovered = updated = 0
    # Trainings first: a training also shows in the predictions list, and its kind should say training.
    for kind in _TRAININGS_FIRST:
        new, changed = _import_list(client, kind, seen)
        discovered, updated = discovered + new, updated + changed
    count("JobsDiscovered", discovered)
    return DiscoveryReport(provider, client.display_name, discovered, updated)


def _import_list(client: ProviderClient, kind: str, seen: set[str]) -> tuple[int, int]:
    """Import one list newest first.

    Until a walk has once reached the end of the list (or the cap), every
    sync reads all of it: a first sync that failed half-way must not take the
    pages it did store for the end of the history.
    """
    state, cap = wiring.state_store(), get_settings().sync_cap_per_list
    history_imported = state.history_imported(client.name, kind)
    discovered = updated = read = 0
    page_handle: str | None = None
    while read < cap:
        if _out_of_time():
            logger.warning("sync stopped early to answer in time", extra={"kind": kind, "read": read})
            return discovered, updated  # what was stored stays stored; the next sync goes on
        page = client.list_page(kind, page_handle)
        observations = page.jobs[: cap - read]
        read += len(observations)
        stored = wiring.job_store().get_many(observation.job_id for observation in observations)
        everything_known_and_ended = bool(observations) and all(
            observation.job_id in stored and stored[observation.job_id].is_terminal for observation in observations
        )
        # A job listed twice (in one page, or in both lists) is taken once.
        fresh = list({o.job_id: o for o in observations if o.job_id not in seen}.values())
        seen.update(observation.job_id for observation in fresh)
        discovered += create_jobs([observation for observation in fresh if observation.job_id not in stored])
        for observation in fresh:
            if observation.job_id in stored:
                updated += _update_one(client, observation, stored[observation.job_id])
        if not page.next_page:
            break
        if history_imported and everything_known_and_ended:
            return discovered, updated
        page_handle = page.next_page
    if not history_imported:
        state.mark_history_imported(client.name, kind)
    return discovered, updated


def _out_of_time() -> bool:
    left = seconds_left()
    return left is not None and left < _SECONDS_PER_PAGE


def _update_one(client: ProviderClient, observation: JobObservation, stored: Job) -> int:
    just_ended = stored.is_active and observation.status is not None and observation.status.is_terminal
    if just_ended:
        observation = _with_final_logs(client, observation)
    return int(record_observation(observation, current=stored).changed)


def _with_final_logs(client: ProviderClient, listed: JobObservation) -> JobObservation:
    try:
        return client.get_job(listed.job_id, listed.kind)
    except ProviderError as exc:
        logger.warning("could not fetch an ended job's logs", extra={"job_id": listed.job_id, "error": str(exc)})
        return listed
