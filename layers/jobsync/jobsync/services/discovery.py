"""Sync: what is new at the top of the provider's lists now; anything deeper in the background.

A sync reads the newest pages of both lists (trainings first), at most
`sync_first_pages` pages of each, and stops at the first page of jobs already
stored and ended: after the first import that is a page or two, and the sync
answers at once. What it could not read -- a first sync's history, or a burst
of new jobs deeper than those pages -- becomes a segment of the background
import (services/history_import.py), which the sync starts unless an importer
is already at work. No cap: the import goes on to the end of each list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.deadline import seconds_left
from jobsync.observability import count, logger
from jobsync.providers.base import ProviderClient
from jobsync.providers.registry import provider_client
from jobsync.services.history_import import start_if_idle
from jobsync.services.page_import import NewJobs, import_page
from jobsync.store.imports import ImportState, Segment

_TRAININGS_FIRST = ("training", "prediction")
# Reading and storing one page of a hundred jobs: a page is not started with less time than this left.
_SECONDS_PER_PAGE = 5.0
# A sync starts no further page after this long and leaves the rest to the background import, so that it
# answers in a few seconds however slow the provider or the store is today.
_ANSWER_SECONDS = 1.0


@dataclass(frozen=True)
class DiscoveryReport:
    provider: str
    display_name: str
    discovered: int
    updated: int
    # False while the background import still has something to read.
    history_complete: bool = True
    # This sync started the background import (True) or found one already at work (False).
    started_import: bool = False

    @property
    def message(self) -> str:
        said = f"Discovered {self.discovered} new jobs from {self.display_name}"
        if self.history_complete:
            return said
        if self.started_import:
            return f"{said}; the rest of the history is being imported in the background"
        return f"{said}; the history import is still running"


@dataclass
class _Top:
    """One list's newest pages as this sync read them, and where and why it stopped."""

    kind: str
    discovered: int = 0
    updated: int = 0
    stopped_by: str = ""  # "end" (of the list), "known" (a page stored and ended), "pages" or "time"
    next_page: str | None = None  # the first page not read, unless stopped by "end"


def discover_jobs(provider: str) -> DiscoveryReport:
    """Raises ProviderError when the provider cannot be read; what was stored before that stays stored,
    and what the lists read so far leave to import is recorded for the background import."""
    client = provider_client(provider)
    seen: set[str] = set()
    tops: list[_Top] = []
    started_left = seconds_left()
    answer_by = None if started_left is None else started_left - _ANSWER_SECONDS  # as time left
    try:
        for kind in _TRAININGS_FIRST:  # a training also shows as a prediction; its kind should say training
            tops.append(_read_top(client, kind, seen, get_settings().sync_first_pages, answer_by))
    finally:
        discovered = sum(top.discovered for top in tops)
        started = start_if_idle(provider, lambda state: _left_to_import(state, tops), created=discovered)
        count("JobsDiscovered", discovered)
    state = started.state
    if state.running:
        logger.info(
            "history import " + ("started" if started.started else "already running"),
            extra={"provider": provider, "segments": len(state.segments), "imported": state.imported},
        )
    updated = sum(top.updated for top in tops)
    return DiscoveryReport(
        provider, client.display_name, discovered, updated, not state.running, started_import=started.started
    )


def _read_top(client: ProviderClient, kind: str, seen: set[str], most_pages: int, answer_by: float | None) -> _Top:
    """The list's first pages, their new jobs written 99 to a transaction across the pages (all stored
    before this returns; should it raise instead, the list's top is not recorded and is read again)."""
    new_jobs = NewJobs()
    top = _read_pages(client, kind, seen, most_pages, answer_by, new_jobs)
    top.discovered += new_jobs.flush()
    return top


def _read_pages(
    client: ProviderClient, kind: str, seen: set[str], most_pages: int, answer_by: float | None, new_jobs: NewJobs
) -> _Top:
    top, handle, last_all_known = _Top(kind), None, False
    visited: set[str | None] = set()
    for _ in range(most_pages):
        if _out_of_time(answer_by):
            top.stopped_by, top.next_page = "time", handle
            return top
        visited.add(handle)
        page = client.list_page(kind, handle)
        outcome = import_page(client, page.jobs, seen, new_jobs)
        top.discovered, top.updated = top.discovered + outcome.created, top.updated + outcome.updated
        # A list whose next page leads back to one already read has nothing more to give.
        if not page.next_page or page.next_page in visited:
            top.stopped_by = "end"
            return top
        if outcome.known_and_ended:
            top.stopped_by, top.next_page = "known", page.next_page
            return top
        handle, last_all_known = page.next_page, outcome.all_known
    # The last page read held no new job (only some still active): nothing new is below it, and its
    # active jobs are the poller's to refresh. Otherwise what is below goes to the background.
    top.stopped_by, top.next_page = ("known" if last_all_known else "pages"), handle
    return top


def _left_to_import(state: ImportState, tops: list[_Top]) -> ImportState:
    """The import's state once what these lists' tops leave to read is added to it."""
    state = _with_earlier_progress(state) if state.version == 0 else state
    segments, history = list(state.segments), set(state.history_imported)
    for top in tops:
        walking_to_end = any(segment.to_end for segment in segments if segment.kind == top.kind)
        whole_list_pending = top.kind not in history and not walking_to_end
        if top.stopped_by == "end":
            # The whole list was read from its top: it is all stored, whatever was still pending.
            history.add(top.kind)
            segments = [segment for segment in segments if segment.kind != top.kind]
            continue
        if top.stopped_by == "known" and not whole_list_pending:
            continue  # new jobs all read, down to what is stored (or to what the running import reads)
        # More below: the list's unread history (read to its end), or new jobs down to the stored ones.
        segment = Segment(top.kind, top.next_page, to_end=whole_list_pending)
        if segment not in segments:
            segments.append(segment)
    return replace(state, segments=tuple(segments), history_imported=frozenset(history))


def _with_earlier_progress(state: ImportState) -> ImportState:
    """A stack that synced before the background import kept its progress per list (sync#<provider>#<kind>):
    a history imported then is not read again, and one cut short goes on from where it stopped."""
    earlier = wiring.state_store()
    segments, history = list(state.segments), set(state.history_imported)
    for kind in _TRAININGS_FIRST:
        progress = earlier.sync_progress(state.provider, kind)
        if progress.history_imported:
            history.add(kind)
        elif progress.resume_page:
            segments.append(Segment(kind, progress.resume_page, to_end=True))
    return replace(state, segments=tuple(segments), history_imported=frozenset(history))


def _out_of_time(answer_by: float | None) -> bool:
    """No time for another page: the invocation is close to its end, or the sync should answer now."""
    left = seconds_left()
    if left is None:
        return False
    if left < _SECONDS_PER_PAGE:
        logger.warning("sync stopped early to answer in time")
        return True
    return answer_by is not None and left < answer_by
