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
from jobsync.providers.base import ProviderClient, ProviderError, ProviderUnavailable
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import create_jobs, record_observation
from jobsync.services.refresh import with_final_logs

_TRAININGS_FIRST = ("training", "prediction")
# Reading and storing one page of a hundred jobs: a page is not started with less time than this left.
_SECONDS_PER_PAGE = 5.0


@dataclass(frozen=True)
class DiscoveryReport:
    provider: str
    display_name: str
    discovered: int
    updated: int
    # False while some list's history is still being imported (the cap or the clock stopped this sync).
    history_complete: bool = True

    @property
    def message(self) -> str:
        return f"Discovered {self.discovered} new jobs from {self.display_name}"


def discover_jobs(provider: str) -> DiscoveryReport:
    """Raises ProviderError when the provider cannot be read; what was stored before that stays stored."""
    client = provider_client(provider)
    seen: set[str] = set()
    discovered = updated = 0
    history_complete = True
    # Trainings first: a training also shows in the predictions list, and its kind should say training.
    for kind in _TRAININGS_FIRST:
        walk = _import_list(client, kind, seen)
        discovered, updated = discovered + walk.discovered, updated + walk.updated
        history_complete = history_complete and walk.history_complete
    count("JobsDiscovered", discovered)
    return DiscoveryReport(provider, client.display_name, discovered, updated, history_complete)


@dataclass
class _Walk:
    """Passes down one list in one sync: what they found, and where and why the last one stopped."""

    seen: set[str]
    budget: int  # what the pass may still take (the cap per list, per pass), checked between pages
    discovered: int = 0
    updated: int = 0
    pages: int = 0
    stopped_by: str = ""  # "end", "known", "cap" or "time"
    continue_from: str | None = None  # the page to read next, when stopped by "cap" or "time"
    history_complete: bool = False  # the list's whole history is stored


def _import_list(client: ProviderClient, kind: str, seen: set[str]) -> _Walk:
    """Import one list: what is new at its top, then the part of its history not imported yet.

    The history is imported newest first and may take several syncs (the cap,
    the invocation's time); where it stopped is kept, and the next sync goes
    on from there after taking in what is new. Once the history is in, a sync
    reads down to the first page of jobs already stored and ended.
    """
    state, cap = wiring.state_store(), get_settings().sync_cap_per_list
    progress = state.sync_progress(client.name, kind)
    walk = _Walk(seen=seen, budget=cap)
    resume = progress.resume_page
    if progress.history_imported or resume:
        _walk(client, kind, walk, start=None, stop_at_known=True)
        if walk.stopped_by in ("cap", "time"):
            # More is new than this pass could read: the next sync fills the gap from where it stopped.
            resume = walk.continue_from
            state.save_sync_progress(client.name, kind, history_imported=False, resume_page=resume)
            return walk
        if progress.history_imported:
            walk.history_complete = True
            return walk
    _import_history(client, kind, walk, resume, cap)
    walk.history_complete = walk.stopped_by == "end"
    return walk


def _import_history(client: ProviderClient, kind: str, walk: _Walk, resume: str | None, cap: int) -> None:
    state = wiring.state_store()

    def keep(next_page: str | None) -> None:
        state.save_sync_progress(client.name, kind, history_imported=False, resume_page=next_page)

    walk.budget, pages_before = cap, walk.pages
    try:
        # Only new jobs count against the cap here: pages read again after a resume cost no budget.
        _walk(client, kind, walk, start=resume, stop_at_known=False, keep_progress=keep)
    except ProviderUnavailable:
        raise  # a passing fault: the saved position stays, and the next sync goes on from it
    except ProviderError:
        if resume is None or walk.pages > pages_before:
            raise
        # The provider refuses the saved page (an old cursor, another endpoint): start the history over.
        logger.warning("saved sync position refused: the history import starts over", extra={"kind": kind})
        keep(None)
        _walk(client, kind, walk, start=None, stop_at_known=False, keep_progress=keep)
    if walk.stopped_by == "end":
        state.save_sync_progress(client.name, kind, history_imported=True, resume_page=None)
    else:
        keep(walk.continue_from)


def _walk(
    client: ProviderClient,
    kind: str,
    walk: _Walk,
    *,
    start: str | None,
    stop_at_known: bool,
    keep_progress: Callable[[str | None], None] | None = None,
) -> None:
    page_handle, visited = start, set()
    while True:
        walk.continue_from = page_handle
        if walk.budget <= 0 or _out_of_time():
            walk.stopped_by = "cap" if walk.budget <= 0 else "time"
            return  # what was stored stays stored; the next sync goes on
        visited.add(page_handle)
        page = client.list_page(kind, page_handle)
        walk.pages += 1
        known_and_ended, created = _import_page(client, page.jobs, walk)
        walk.budget -= created if keep_progress is not None else len(page.jobs)
        # A list whose next page leads back to one already read has nothing more to give.
        if not page.next_page or page.next_page in visited:
            walk.stopped_by, walk.continue_from = "end", None
            return
        if stop_at_known and known_and_ended:
            walk.stopped_by = "known"
            return
        page_handle = page.next_page
        if keep_progress is not None:
            keep_progress(page_handle)  # an import cut short by a failure resumes here


def _import_page(client: ProviderClient, observations: list[JobObservation], walk: _Walk) -> tuple[bool, int]:
    """Store a page's new jobs and update its known ones.

    Returns whether all of them were already stored and ended, and how many were new.
    """
    stored = wiring.job_store().get_many(observation.job_id for observation in observations)
    known_and_ended = bool(observations) and all(
        observation.job_id in stored and stored[observation.job_id].is_terminal for observation in observations
    )
    # A job listed twice (in one page, or in both lists) is taken once.
    fresh = list({o.job_id: o for o in observations if o.job_id not in walk.seen}.values())
    walk.seen.update(observation.job_id for observation in fresh)
    created = create_jobs([observation for observation in fresh if observation.job_id not in stored])
    walk.discovered += created
    for observation in fresh:
        if observation.job_id in stored:
            walk.updated += _update_one(client, observation, stored[observation.job_id])
    return known_and_ended, created


def _out_of_time() -> bool:
    left = seconds_left()
    if left is not None and left < _SECONDS_PER_PAGE:
        logger.warning("sync stopped early to answer in time")
        return True
    return False


def _update_one(client: ProviderClient, observation: JobObservation, stored: Job) -> int:
    return int(record_observation(with_final_logs(client, stored, observation), current=stored).changed)
