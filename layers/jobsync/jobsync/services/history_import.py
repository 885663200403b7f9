"""The history import in the background: a provider's lists read page after page until nothing is left.

A sync reads the newest pages itself and answers; what it could not read is
recorded as segments (store/imports.py) and handed to the history_importer
function. Each importer invocation takes the lease, imports pages until close
to its deadline (saving the cursor after every page), and hands off its
successor. DynamoDB holds the truth: when a hand-off or an invocation is lost,
the lease expires and the poller's tick (or the next sync) starts the import
again from the saved cursor. The lease makes sure one importer runs at a time.

While it runs, every WebSocket client hears `sync_progress` messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from jobsync import background, wiring
from jobsync.config import get_settings
from jobsync.deadline import seconds_left
from jobsync.observability import count, logger
from jobsync.providers.base import ProviderError, ProviderUnavailable
from jobsync.providers.registry import PROVIDERS, provider_client
from jobsync.services.page_import import NewJobs, import_page
from jobsync.store.imports import ImportState, Segment

# The lease (settings.history_import_lease_seconds, a minute by default) is how long a hand-off may take
# to start the importer before another may be started instead (Lambda's async queue usually starts it
# within a second; a throttled function later: a late one finds the lease taken and does nothing), and
# how long a running importer holds it after each page (or to its deadline, if sooner, plus a margin):
# an invocation that died is taken over once it expires, and one whose page took longer than that finds
# the lease gone at its next save and stops (the page it read is stored either way).
_LEASE_MARGIN_SECONDS = 10.0
# Reading and storing one page of a hundred jobs: a page is not started with less time than this left.
_SECONDS_PER_PAGE = 5.0
# Clients hear the count at least this often while an invocation imports (and at its end).
_PROGRESS_EVERY_PAGES = 10

PROGRESS_MESSAGE = "sync_progress"


@dataclass(frozen=True)
class StartedImport:
    """What a sync did about the background import: the state it left, and whether it started an importer."""

    state: ImportState
    started: bool


def _new_lease() -> str:
    return uuid.uuid4().hex


def start_if_idle(provider: str, change: Callable[[ImportState], ImportState], *, created: int = 0) -> StartedImport:
    """Apply a sync's `change` to the import's state; when something is left and no importer holds the
    lease, take it for a new importer and hand that off. Of any number of concurrent syncs, one starts it.

    `created`: jobs the sync stored itself, counted in a new import's `imported`.
    """
    now, lease = time.time(), _new_lease()
    before: list[ImportState] = []

    def apply(state: ImportState) -> ImportState:
        before[:] = [state]
        changed = change(state)
        if not changed.running or changed.leased(now):
            return changed
        imported = changed.imported if state.running else created
        return replace(changed, lease=lease, lease_until=now + _lease_seconds(), imported=imported)

    state = wiring.import_store().change(provider, apply)
    started = state.lease == lease
    if started:
        _hand_off(provider, lease)
    elif before and before[0].running and not state.running and not state.leased(now):
        # The sync read what was left itself and no importer is at work to say so: clients hear it here.
        _progress(state, done=True)
    return StartedImport(state, started)


def resume_stalled_imports() -> None:
    """Start an importer for any import whose importer went away (the poller's tick calls this).

    One read per provider when nothing is stalled; never raises (the tick goes on whatever happens here).
    """
    for provider in PROVIDERS:
        try:
            state = wiring.import_store().get(provider)
            if state.running and not state.leased(time.time()):
                logger.info("resuming a stalled history import", extra={"provider": provider})
                start_if_idle(provider, lambda current: current)
        except Exception:  # noqa: BLE001 - the import waits for the next tick; the poll must go on
            logger.exception("could not resume the history import", extra={"provider": provider})


def _hand_off(provider: str, lease: str) -> None:
    if not _send(provider, lease):
        # Nothing started: free the lease at once so that the next tick or sync starts it.
        _release(provider, lease)


def _send(provider: str, lease: str) -> bool:
    function = get_settings().history_importer_function
    if not function:
        logger.warning("JOBSYNC_HISTORY_IMPORTER_FUNCTION is not set: the history import waits")
        return False
    return background.hand_off(function, {"provider": provider, "lease": lease})


def _release(provider: str, lease: str) -> None:
    def release(state: ImportState) -> ImportState | None:
        return replace(state, lease=None, lease_until=0.0) if state.lease == lease else None

    wiring.import_store().change(provider, release)


@dataclass(frozen=True)
class ImportRun:
    provider: str
    ran: bool  # False: another importer holds the lease, or nothing was left to import
    pages: int = 0
    created: int = 0  # jobs this invocation stored
    imported: int = 0  # jobs the whole import has stored so far
    done: bool = False  # nothing is left to import
    handed_off: bool = False  # a successor was asked to go on


def run_import(provider: str, lease: str | None) -> ImportRun:
    """One importer invocation: pages until close to the deadline, then a successor (or the end).

    `lease` is the token the starter handed off with: the lease is taken over when it still holds
    it, or when the lease has expired. The invocation then holds a token of its own, so a second
    delivery of the same hand-off finds the lease taken and does nothing.
    """
    store, mine = wiring.import_store(), _new_lease()

    def claim(state: ImportState) -> ImportState | None:
        if not state.running or (state.leased(time.time()) and state.lease != lease):
            return None
        return replace(state, lease=mine, lease_until=_lease_until())

    state = store.change(provider, claim)
    if state.lease != mine:
        logger.info("history import: nothing to do or another importer runs", extra={"provider": provider})
        return ImportRun(provider, ran=False, imported=state.imported, done=not state.running)
    walk = _Walk(provider, mine, state)
    try:
        walk.run()
    except ProviderUnavailable:
        # A passing fault: the cursor stays, the lease is freed, and the poller's next tick goes on.
        logger.warning("history import paused: the provider is unavailable", extra={"provider": provider})
        _release(provider, mine)
        _progress(walk.state, done=False)
        return walk.report(handed_off=False)
    except BaseException:
        _release(provider, mine)
        raise
    if not walk.holds_lease:
        return walk.report(handed_off=False)
    if walk.state.running:
        handed_off = _hand_over(provider, walk)
        _progress(walk.state, done=False)
        return walk.report(handed_off=handed_off)
    _release(provider, mine)
    _progress(walk.state, done=True)
    count("HistoryImportsFinished")
    return walk.report(handed_off=False)


def _hand_over(provider: str, walk: _Walk) -> bool:
    """Keep the lease for the successor for the hand-off's grace, and hand off."""

    def extend(state: ImportState) -> ImportState | None:
        if state.lease != walk.lease:
            return None
        return replace(state, lease_until=time.time() + _lease_seconds())

    walk.state = wiring.import_store().change(provider, extend, current=walk.state)
    if walk.state.lease != walk.lease:
        return False
    if _send(provider, walk.lease):
        return True
    _release(provider, walk.lease)
    return False


def _lease_seconds() -> float:
    return get_settings().history_import_lease_seconds


def _lease_until() -> float:
    left, lease = seconds_left(), _lease_seconds()
    return time.time() + (lease if left is None else min(lease, max(left, 0.0) + _LEASE_MARGIN_SECONDS))


def _out_of_time() -> bool:
    left = seconds_left()
    return left is not None and left < _SECONDS_PER_PAGE


class _Walk:
    """One invocation's pages: the first segment is read until it ends, then the next.

    New jobs are written 99 to a transaction across pages (NewJobs): a page whose new jobs are not all
    stored yet stays the saved position (an importer that dies re-reads it; its stored jobs are known
    then), and the walk reads on from `ahead`. At most one page's jobs wait: when an earlier page's
    would still wait after a page, or a segment ends, or the invocation stops, everything is written.
    """

    def __init__(self, provider: str, lease: str, state: ImportState) -> None:
        self.provider, self.lease, self.state = provider, lease, state
        self.client = provider_client(provider)
        self.seen: set[str] = set()
        self.visited: set[tuple[str, str | None]] = set()
        self.pages = self.created = 0
        self.holds_lease = True
        self.new_jobs = NewJobs()
        # (the saved segment, the page to read next) while the saved one's new jobs wait in new_jobs.
        self.ahead: tuple[Segment, Segment | None] | None = None

    def run(self) -> None:
        while self.state.running and not _out_of_time():
            if not self._read_next_page():
                return
        if self.new_jobs:
            self._write_waiting_jobs()

    def _read_next_page(self) -> bool:
        """Read and store one page and save the position; False when the lease was lost."""
        saved = self.state.segments[0]
        segment = self.ahead[1] if self.ahead and self.ahead[0] == saved and self.ahead[1] else saved
        self.ahead = None
        try:
            page = self.client.list_page(segment.kind, segment.page)
        except ProviderUnavailable:
            raise
        except ProviderError:
            if segment.page is None or (segment.kind, segment.page) in self.visited:
                raise
            # The provider refuses the saved cursor (too old, another endpoint): that list starts over.
            logger.warning("saved import position refused: the list starts over", extra={"kind": segment.kind})
            created = self.new_jobs.flush()
            return self._advance(saved, Segment(segment.kind, None, segment.to_end), created=created)
        self.visited.add((segment.kind, segment.page))
        outcome = import_page(self.client, page.jobs, self.seen, self.new_jobs)
        ended = (
            not page.next_page
            or (segment.kind, page.next_page) in self.visited
            or (not segment.to_end and outcome.known_and_ended)
        )
        following = None if ended else Segment(segment.kind, page.next_page, segment.to_end)
        created = outcome.created
        if self.new_jobs and (ended or len(self.new_jobs) > outcome.new):
            created += self.new_jobs.flush()  # an earlier page's jobs would wait on, or the list is done
        self.pages, self.created = self.pages + 1, self.created + created
        if self.new_jobs:
            # Some of this page's new jobs wait: it stays the saved position until they are stored.
            self.ahead = (segment, following)
            following = segment
        if not self._advance(saved, following, created=created):
            logger.warning("history import: the lease was lost", extra={"provider": self.provider})
            self.holds_lease = False
            return False
        if self.pages % _PROGRESS_EVERY_PAGES == 0:
            _progress(self.state, done=False)
        return True

    def _write_waiting_jobs(self) -> None:
        """Store the jobs still waiting and move the saved position past their page."""
        created = self.new_jobs.flush()
        self.created += created
        saved, following = self.ahead if self.ahead else (None, None)
        self.ahead = None
        if not self._advance(saved, following, created=created):
            logger.warning("history import: the lease was lost", extra={"provider": self.provider})
            self.holds_lease = False

    def _advance(self, segment: Segment | None, following: Segment | None, *, created: int) -> bool:
        """Replace `segment` by `following` (None: it is done) and count what was stored; False: lease lost.
        With no `segment`, only the count moves."""

        def advance(state: ImportState) -> ImportState | None:
            if state.lease != self.lease:
                return None
            segments = list(state.segments)
            history = set(state.history_imported)
            if segment is not None and segment in segments:  # a sync that read a whole list removes its segments
                index = segments.index(segment)
                if following is None:
                    del segments[index]
                    if segment.to_end:
                        history.add(segment.kind)
                else:
                    segments[index] = following
            return replace(
                state,
                segments=tuple(segments),
                history_imported=frozenset(history),
                imported=state.imported + created,
                lease_until=_lease_until(),
            )

        self.state = wiring.import_store().change(self.provider, advance, current=self.state)
        return self.state.lease == self.lease

    def report(self, *, handed_off: bool) -> ImportRun:
        return ImportRun(
            self.provider,
            ran=True,
            pages=self.pages,
            created=self.created,
            imported=self.state.imported,
            done=not self.state.running,
            handed_off=handed_off,
        )


def _progress(state: ImportState, *, done: bool) -> None:
    """`sync_progress` to every WebSocket client; a failure to push never stops the import."""
    from jobsync.services.broadcast import push_to_all

    try:
        push_to_all({"type": PROGRESS_MESSAGE, "imported": state.imported, "done": done})
    except Exception:  # noqa: BLE001 - progress is a courtesy; the import itself goes on
        logger.exception("could not push the import's progress")
