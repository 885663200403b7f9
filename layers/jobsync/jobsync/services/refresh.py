"""Refreshing every active job from its provider's lists (the poller and `sync_active`).

Lists give a hundred jobs a request, so a tick over ten thousand active jobs
costs about a hundred requests rather than ten thousand. Each list is read as
deep as its oldest active job needs (the sync cap is the history import's, not
this walk's), and where the refresh waits, it waits in parallel:

- the predictions and trainings lists are walked at once, each reading its
  next page while the one in hand is applied (Replicate's cursor is opaque:
  the next page is known only once this one arrived, so one page ahead is as
  far as reading ahead goes);
- changed jobs are written 99 to a transaction (a page of changes is one
  request, not a hundred) on a pool of WRITE_WORKERS;
- jobs the lists did not show are fetched on a pool of FETCH_WORKERS.

The active jobs are read lean (id, kind, creation time and a digest of what
the provider last said: store/jobs.py `active_refs`): a listed job whose
digest is the stored one has nothing new, and only the others (5% of a busy
tick) are read whole, a hundred to a request, right before they are written.

A job that just ended is not fetched here: its final logs (the provider
deletes them an hour after the end) are fetched in the background
(`final_logs.request_tails`, which marks each tail pending in DynamoDB before
the job is stored as ended, so a lost invocation loses no tail).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from jobsync import wiring
from jobsync.deadline import seconds_left
from jobsync.domain.fingerprint import observation_digest
from jobsync.domain.job import TRAINING, Job, JobObservation, apply_observation
from jobsync.domain.status import JobStatus
from jobsync.domain.timestamps import sortable
from jobsync.observability import count, logger
from jobsync.providers.base import (
    JobPage,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
)
from jobsync.providers.registry import provider_client
from jobsync.services import final_logs
from jobsync.services.bounded_pool import BoundedPool
from jobsync.services.job_updates import Change, record_changes
from jobsync.store.jobs import TRANSACTION_JOBS, ActiveJobRef

# Jobs the lists did not show are fetched one by one, but never more than this many a tick.
MAX_SINGLE_FETCHES = 50
# Provider requests in flight for those fetches. Replicate allows 3,000 reads a minute (50 a second) in
# short bursts: 8 at once are at most 50 requests in well under a second, and a tick's whole cost (its
# list pages, one per hundred active jobs, plus these 50) stays a few percent of a minute's allowance.
FETCH_WORKERS = 8
# Transactions of 99 jobs in flight. Each one moves a counter shard (store/jobs.py), so four rarely meet
# on an item; four transactions are 400 WCUs at most, far below an on-demand table's limits, and the
# writes of a tick over 10,000 jobs with 5% changed (five or six transactions) take one round trip or two.
WRITE_WORKERS = 4
# How long an active job must keep answering 404 before it is taken as ended.
FORGOTTEN_AFTER_SECONDS = 15 * 60
# A list page is not asked for with less time left than this: the answer, and the writes, must still fit.
_SECONDS_PER_PAGE = 5.0


@dataclass
class RefreshReport:
    provider: str
    active: int = 0
    updated: int = 0
    list_requests: int = 0
    single_fetches: int = 0
    # Jobs that just ended whose final logs were handed to the background.
    tails_requested: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, updated: int = 0, list_requests: int = 0, single_fetches: int = 0, tails: int = 0) -> None:
        with self._lock:
            self.updated += updated
            self.list_requests += list_requests
            self.single_fetches += single_fetches
            self.tails_requested += tails

    def failed(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


def refresh_active_jobs(provider: str) -> RefreshReport:
    """Bring every active job of `provider` up to date. Provider failures are reported, never raised."""
    report = RefreshReport(provider=provider)
    active = wiring.job_store().active_refs(provider)
    report.active = len(active)
    if not active:
        return report
    client = provider_client(provider)
    unseen = _Unseen(active)
    kinds = sorted({job.kind for job in active})
    with BoundedPool(WRITE_WORKERS, "refresh-write") as write_pool:
        writes = _Writes(write_pool, report)
        with BoundedPool(len(kinds), "refresh-walk") as walkers:
            walks = {kind: walkers.submit(_walk_list, client, kind, unseen, writes, report) for kind in kinds}
            walked = {kind for kind, walk in walks.items() if walk.result()}
        # Where a list could not be read, its jobs wait for the next tick rather than cost a request each.
        missing = [job for job in unseen.left() if job.kind in walked]
        # A random share each tick: when more are missing than a tick may fetch, none waits forever.
        writes.add(_fetch_one_by_one(client, random.sample(missing, min(len(missing), MAX_SINGLE_FETCHES)), report))
        writes.finish()
    return report


class _Unseen:
    """The active jobs no list has shown yet, and how far back each list must be read for them.

    Each creation time is parsed once, and each kind's jobs are kept oldest first, so the oldest
    unseen one is found by moving past the ones seen since: a tick over 10,000 jobs parses 10,000
    stamps, not a million. Shared by the walks of both lists (a training shows in both).
    """

    def __init__(self, jobs: list[ActiveJobRef]) -> None:
        self._jobs = {job.job_id: job for job in jobs}
        self._lock = threading.Lock()
        self._oldest_first: dict[str, list[tuple[str, str]]] = {}
        for job in jobs:
            # Jobs without a creation time set no depth: they are fetched on their own instead.
            if stamp := sortable(job.created_at):
                self._oldest_first.setdefault(job.kind, []).append((stamp, job.job_id))
        for entries in self._oldest_first.values():
            entries.sort()
        self._next = dict.fromkeys(self._oldest_first, 0)

    def take(self, job_id: str) -> ActiveJobRef | None:
        """The active job `job_id` the first time a list shows it; None when it is not (or no longer) unseen."""
        with self._lock:
            return self._jobs.pop(job_id, None)

    def oldest(self, kind: str) -> str | None:
        """The creation time (sortable) of the oldest unseen job of `kind`; None when none is left."""
        with self._lock:
            entries, index = self._oldest_first.get(kind, []), self._next.get(kind, 0)
            while index < len(entries) and entries[index][1] not in self._jobs:
                index += 1
            self._next[kind] = index
            return entries[index][0] if index < len(entries) else None

    def left(self) -> list[ActiveJobRef]:
        with self._lock:
            return list(self._jobs.values())


def _walk_list(client: ProviderClient, kind: str, unseen: _Unseen, writes: _Writes, report: RefreshReport) -> bool:
    """Read `kind` pages newest first until every active job of that kind was seen or the list is older.

    The next page is asked for before this one's changes are handed to the writers. False when the
    provider failed part-way or the invocation's time ran short (the rest waits for the next tick).
    """
    if unseen.oldest(kind) is None:
        return True
    with BoundedPool(1, f"refresh-read-{kind}") as reader:
        ahead = reader.submit(client.list_page, kind, None)
        while True:
            try:
                page = ahead.result()
            except ProviderError as exc:
                _failed(report, f"{kind} list: {exc}")
                return False
            report.add(list_requests=1)
            candidates = [candidate for observation in page.jobs if (candidate := _candidate(unseen, observation))]
            finished = _past_every_unseen(page, unseen.oldest(kind))
            if not finished:
                if _out_of_time():
                    writes.add(candidates)
                    report.failed(f"{kind} list: not read to the end, the invocation's time ran short")
                    return False
                ahead = reader.submit(client.list_page, kind, page.next_page)
            writes.add(candidates)
            if finished:
                return True


@dataclass(frozen=True)
class _Candidate:
    """A listed (or fetched) observation that may change an active job: its digest is not the stored one."""

    job_id: str
    observation: JobObservation


def _candidate(unseen: _Unseen, observation: JobObservation) -> _Candidate | None:
    job = unseen.take(observation.job_id)
    if job is None:
        return None
    digest = observation_digest(observation)
    if digest is None:
        return None  # a status jobsync does not know leaves the job as it is
    # A training shows in the predictions list too; only the trainings list may make a job a training.
    if digest == job.observed and (observation.kind != TRAINING or job.kind == TRAINING):
        return None
    return _Candidate(job.job_id, observation)


def _past_every_unseen(page: JobPage, oldest_unseen: str | None) -> bool:
    """True when the list has nothing more to show: it ended, or this page is older than every job we wait for."""
    if not page.next_page or not page.jobs or oldest_unseen is None:
        return True
    listed = [stamp for observation in page.jobs if (stamp := sortable(observation.created_at))]
    return bool(listed) and min(listed) < oldest_unseen


def _out_of_time() -> bool:
    left = seconds_left()
    return left is not None and left < _SECONDS_PER_PAGE


class _Writes:
    """Candidates on their way to DynamoDB: gathered by 99, each batch read whole (one BatchGetItem), applied
    and written in one transaction, on a bounded pool.

    Candidates gather across pages, so five changes a page over a hundred pages are six transactions.
    """

    def __init__(self, pool: BoundedPool, report: RefreshReport) -> None:
        self._pool, self._report = pool, report
        self._waiting: list[_Candidate] = []
        self._lock = threading.Lock()
        self._written: list[Future[None]] = []

    def add(self, candidates: list[_Candidate]) -> None:
        with self._lock:
            self._waiting += candidates
            while len(self._waiting) >= TRANSACTION_JOBS:
                batch, self._waiting = self._waiting[:TRANSACTION_JOBS], self._waiting[TRANSACTION_JOBS:]
                self._written.append(self._pool.submit(_store, batch, self._report))

    def finish(self) -> None:
        """Write what is still waiting, and wait until every write is done."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            if batch:
                self._written.append(self._pool.submit(_store, batch, self._report))
            written = list(self._written)
        for future in written:
            future.result()


def _store(candidates: list[_Candidate], report: RefreshReport) -> None:
    """Apply `candidates` to their jobs as stored and write the changes; the final logs of jobs that just
    ended are marked pending first.

    Should that mark fail, those jobs stay stored as active (the next tick ends them): a job is never
    stored as ended without its tail kept (a fetched job's logs are kept before it is written) or pending.
    """
    try:
        changes = _changes(candidates)
    except Exception as exc:  # noqa: BLE001 - one failing batch never stops the others
        logger.exception("could not read jobs to refresh", extra={"jobs": len(candidates)})
        report.failed(f"{len(candidates)} jobs not read: {type(exc).__name__}")
        return
    ended = [change for change in changes if _needs_final_logs(change)]
    if ended:
        try:
            final_logs.request_tails([change.current.job_id for change in ended])
            report.add(tails=len(ended))
        except Exception as exc:  # noqa: BLE001 - the ended jobs wait; the rest is written
            logger.exception("could not mark final log tails pending")
            report.failed(f"final logs of {len(ended)} ended jobs: {type(exc).__name__}")
            left_out = {id(change) for change in ended}
            changes = [change for change in changes if id(change) not in left_out]
    try:
        report.add(updated=sum(outcome.changed for outcome in record_changes(changes)))
    except Exception as exc:  # noqa: BLE001 - one failing batch never stops the others
        logger.exception("could not store refreshed jobs", extra={"jobs": len(changes)})
        report.failed(f"{len(changes)} jobs not stored: {type(exc).__name__}")


def _changes(candidates: list[_Candidate]) -> list[Change]:
    stored = wiring.job_store().get_many(candidate.job_id for candidate in candidates)
    changes = []
    for candidate in candidates:
        job = stored.get(candidate.job_id)
        if job is not None and (changed := apply_observation(job, candidate.observation, wiring.pricing())):
            changes.append(Change(job, candidate.observation, changed))
    return changes


def _needs_final_logs(change: Change) -> bool:
    """The job just ended, and what said so carried no logs (a list item; a fetched job's logs are kept)."""
    return change.current.is_active and change.changed.is_terminal and not change.observation.logs


def with_final_logs(
    client: ProviderClient, job: Job, listed: JobObservation, report: RefreshReport | None = None
) -> JobObservation:
    """`listed`, or the job fetched on its own when `listed` says it just ended (a sync's known jobs).

    Lists omit the logs, and the provider deletes them an hour after the end:
    this is the last chance to keep the tail. Should the fetch fail, the listed
    state still counts, and the tail is marked pending for the tail keeper
    first (final_logs.request_tails; a failure to mark it raises, so that the
    job is not stored as ended without it).
    """
    just_ended = job.is_active and listed.status is not None and listed.status.is_terminal
    if not just_ended:
        return listed
    try:
        if report is not None:
            report.add(single_fetches=1)
        return client.get_job(job.job_id, job.kind)
    except ProviderError as exc:
        if report is not None:
            _failed(report, f"{job.job_id}: {exc}")
        else:
            logger.warning("could not fetch an ended job's logs", extra={"job_id": job.job_id, "error": str(exc)})
        final_logs.request_tails([job.job_id])
        return listed


def _fetch_one_by_one(client: ProviderClient, jobs: list[ActiveJobRef], report: RefreshReport) -> list[_Candidate]:
    """Fetch each job on its own, FETCH_WORKERS at a time. Only a 404 answer counts towards ending a job; a
    provider that fails as a whole (throttling, 5xx, timeouts, answers cut short, refused credentials)
    stops the fetches not started yet: they wait for the next tick rather than each spend their retries."""
    provider_down = threading.Event()

    def fetch(job: ActiveJobRef) -> _Candidate | None:
        if provider_down.is_set():
            return None
        report.add(single_fetches=1)
        try:
            observation = client.get_job(job.job_id, job.kind)
        except ProviderNotFound:
            if not _gone_for_good(job):
                return None
            observation = _forgotten(job.job_id, client)
        except ProviderError as exc:
            _failed(report, f"{job.job_id}: {exc}")
            if _about_the_provider(exc):
                provider_down.set()  # asking again now only makes the throttling, or the outage, worse
            return None
        else:
            _answered(job.job_id)
        return _Candidate(job.job_id, observation)

    if not jobs:
        return []
    with BoundedPool(min(FETCH_WORKERS, len(jobs)), "refresh-fetch") as pool:
        fetches = [pool.submit(fetch, job) for job in jobs]
        return [change for future in fetches if (change := future.result()) is not None]


def _about_the_provider(exc: ProviderError) -> bool:
    """True when the failure says nothing about the one job asked for: the next request would meet it too."""
    if isinstance(exc, (ProviderRateLimited, ProviderAuthError)):
        return True
    return exc.status is None or not 400 <= exc.status < 500


def _gone_for_good(job: ActiveJobRef) -> bool:
    """True once the provider has answered 404 for the job without a break for FORGOTTEN_AFTER_SECONDS.

    One 404 is not enough to end a job for good: a misrouted request or a token
    of another account answers 404 too. Only a 404 answer is noted: a throttle,
    a 5xx, a timeout or an answer cut short says nothing about the job; an
    answer with the job breaks the run (`_answered`).
    """
    since = wiring.state_store().note_not_found(job.job_id, time.time(), continuity_seconds=FORGOTTEN_AFTER_SECONDS)
    return time.time() - since >= FORGOTTEN_AFTER_SECONDS


def _answered(job_id: str) -> None:
    """The provider knows the job: a run of 404s before this answer no longer counts towards ending it."""
    try:
        wiring.state_store().clear_not_found(job_id)
    except Exception:  # noqa: BLE001 - the fetched state is still applied; the next answer clears the run
        logger.exception("could not clear a job's 404 run", extra={"job_id": job_id})


def _forgotten(job_id: str, client: ProviderClient) -> JobObservation:
    """An active job its provider no longer knows (a training queued too long answers 404) has ended:
    left active, it would cost a request every tick forever."""
    logger.warning("active job unknown to its provider: marked failed", extra={"job_id": job_id})
    return JobObservation(
        job_id=job_id,
        provider=client.name,
        status=JobStatus.FAILED,
        provider_status="not_found",
        error_message=f"{client.display_name} no longer knows this job (404)",
    )


def _failed(report: RefreshReport, message: str) -> None:
    count("ProviderErrors")
    logger.warning("provider call failed during refresh", extra={"provider": report.provider, "error": message})
    report.failed(message)
