"""Full sync: discover the provider's jobs (both lists) and update the ones already known.

The first sync imports the history (up to the cap per list; an import cut
short goes on at the next sync); after that, pages are read newest first
until one holds only jobs already stored in a terminal state, so a sync reads
a page or two.
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass
class _Walk:
    """One pass down a list: what it found, and why it stopped."""

    seen: set[str]
    budget: int  # jobs it may still read (the cap per list and sync)
    discovered: int = 0
    updated: int = 0
    stopped_by: str = ""  # "end", "known", "cap" or "time"


def _import_list(client: ProviderClient, kind: str, seen: set[str]) -> tuple[int, int]:
    """Import one list: what is new at its top, then the part of its history not imported yet.

    The history is imported newest first and may take several syncs (the cap,
    the invocation's time); where it stopped is kept, and the next sync goes
    on from there after taking in what is new. Once the history is in, a sync
    reads down to the first page of jobs already stored and ended.
    """
    state, cap = wiring.state_store(), get_settings().sync_cap_per_list
    progress = state.sync_progress(client.name, kind)
    walk = _Walk(seen=seen, budget=cap)
    if progress.history_imported or progress.resume_page:
        _walk(client, kind, walk, start=None, stop_at_known=True)
    if not progress.history_imported and walk.stopped_by != "time":
        start = progress.resume_page if progress.resume_page else None
        walk.budget = cap  # the history import has a cap of its own

        def remember(next_page: str | None) -> None:
            state.save_sync_progress(client.name, kind, history_imported=next_page is None, resume_page=next_page)

        _walk(client, kind, walk, start=start, stop_at_known=False, on_page=remember)
    return walk.discovered, walk.updated


def _walk(
    client: ProviderClient,
    kind: str,
    walk: _Walk,
    *,
    start: str | None,
    stop_at_known: bool,
    on_page: Callable[[str | None], None] | None = None,
) -> None:
    page_handle = start
    while True:
        if walk.budget <= 0 or _out_of_time():
            walk.stopped_by = "cap" if walk.budget <= 0 else "time"
            return  # what was stored stays stored; the next sync goes on
        page = client.list_page(kind, page_handle)
        observations = page.jobs[: walk.budget]
        walk.budget -= len(observations)
        known_and_ended = _import_page(client, observations, walk)
        if len(observations) < len(page.jobs):
            if on_page is not None:
                on_page(page_handle)  # the cap cut this page short: the next sync reads it again
            walk.stopped_by = "cap"
            return
        if on_page is not None:
            on_page(page.next_page)
        if not page.next_page:
            walk.stopped_by = "end"
            return
        if stop_at_known and known_and_ended:
            walk.stopped_by = "known"
            return
        page_handle = page.next_page


def _import_page(client: ProviderClient, observations: list[JobObservation], walk: _Walk) -> bool:
    """Store a page's new jobs and update its known ones; True when all were already stored and ended."""
    stored = wiring.job_store().get_many(observation.job_id for observation in observations)
    known_and_ended = bool(observations) and all(
        observation.job_id in stored and stored[observation.job_id].is_terminal for observation in observations
    )
    # A job listed twice (in one page, or in both lists) is taken once.
    fresh = list({o.job_id: o for o in observations if o.job_id not in walk.seen}.values())
    walk.seen.update(observation.job_id for observation in fresh)
    walk.discovered += create_jobs([observation for observation in fresh if observation.job_id not in stored])
    for observation in fresh:
        if observation.job_id in stored:
            walk.updated += _update_one(client, observation, stored[observation.job_id])
    return known_and_ended


def _out_of_time() -> bool:
    left = seconds_left()
    if left is not None and left < _SECONDS_PER_PAGE:
        logger.warning("sync stopped early to answer in time")
        return True
    return False


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
