"""No ended job's log tail is ever dropped: the final tails, fetched in the background until kept.

The provider deletes a job's logs about an hour after it ends, and an ended
job's final logs are only in a fetch of that one job. Whoever sees jobs end
(the poller, `sync_active`) calls `request_tails`: the jobs go on a durable
to-do list in DynamoDB first, then a `tail_keeper` invocation is nudged
(Lambda's async invoke). The tail keeper fetches them with bounded concurrency
and settles each one, as `kept` or as `gone` (the provider no longer has the
job or its logs). A lease per job keeps two runs from fetching the same tail;
a settled job is never fetched again. Should an invocation be lost (a crash, a
hand-off Lambda refused), the poller's tick hands the list off again
(`resume_pending`), so nothing is lost while the provider still has the logs.
The list records when each job was last handed off, so the tick hands off again
only what was never handed off or not for `final_tail_resume_after_seconds`
(longer than a tail keeper and Lambda's retries of it take), not what a tail
keeper is still working through; a tail keeper gives back what it could not
fetch, and the next tick hands that off again at once.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from jobsync import background, wiring
from jobsync.config import get_settings
from jobsync.deadline import seconds_left
from jobsync.domain.errors import JobsyncError
from jobsync.observability import logger
from jobsync.providers.base import ProviderAuthError, ProviderError, ProviderNotFound, ProviderRateLimited
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation
from jobsync.services.kept_logs import keep_logs
from jobsync.store.logs import GONE, KEPT

# One hand-off carries at most this many jobs, so a burst of endings is spread over several tail keepers
# (each well inside Lambda's 256 KB payload: a Replicate id is 26 characters).
JOBS_PER_HAND_OFF = 200
# A fetch that takes longer than this has died with its invocation: another run may take the job over.
LEASE_SECONDS = 120.0
# Replicate deletes logs about an hour after a job ends: a tail still not fetched this long after its first
# try is recorded as gone (a job that keeps failing on its own is not fetched every tick forever).
GIVE_UP_AFTER_SECONDS = 2 * 3600.0
# A fetch is not started with less than this left of the invocation (the provider client's own bound).
_MIN_SECONDS_FOR_A_FETCH = 5.0


def request_tails(job_ids: list[str], clock: Callable[[], float] = time.time) -> None:
    """Make sure the final log tails of `job_ids` (jobs that just ended) are fetched and kept.

    The jobs are recorded as pending (and as handed off now) in DynamoDB before anything else (a
    failure there raises: the caller's request fails rather than drop a tail), then handed to the tail
    keeper; a hand-off that fails is only logged and taken back, so the poller's next tick hands it off.
    """
    unique = sorted(set(job_ids))
    if not unique:
        return
    function = get_settings().tail_keeper_function
    now = clock()
    wiring.log_store().add_pending_final(unique, handed_off_at=now if function else None)
    _hand_off(unique, now)


def resume_pending(clock: Callable[[], float] = time.time) -> int:
    """Hand to the tail keeper again the pending final tails never handed off, or handed off longer than
    `final_tail_resume_after_seconds` ago (the poller's tick); how many.

    Never raises: the tick goes on, and the list is read again at the next one.
    """
    settings = get_settings()
    if not settings.tail_keeper_function:
        logger.warning("no tail keeper configured (JOBSYNC_TAIL_KEEPER_FUNCTION): final tails wait")
        return 0
    now = clock()
    try:
        stale = wiring.log_store().take_stale_pending_final(now, settings.final_tail_resume_after_seconds)
    except JobsyncError:
        logger.exception("could not read the pending final tails")
        return 0
    return _hand_off(stale, now)


def _hand_off(job_ids: list[str], handed_off_at: float) -> int:
    """Hand `job_ids` (recorded as handed off at `handed_off_at`) to tail keepers; how many were handed.
    What Lambda refused is taken out of the record, so the next tick hands it off again."""
    function = get_settings().tail_keeper_function
    if not function:
        logger.warning("no tail keeper configured (JOBSYNC_TAIL_KEEPER_FUNCTION): final tails wait")
        return 0
    refused: list[str] = []
    for start in range(0, len(job_ids), JOBS_PER_HAND_OFF):
        chunk = job_ids[start : start + JOBS_PER_HAND_OFF]
        if not background.hand_off(function, {"job_ids": chunk, "handed_off_at": handed_off_at}):
            refused += chunk
    if refused:
        _give_back(refused, handed_off_at)
    return len(job_ids) - len(refused)


def _give_back(job_ids: list[str], handed_off_at: float) -> None:
    """Take `job_ids` out of their hand-off's record: the next tick hands them off again. Never raises
    (without it they are only handed off later, once the hand-off is stale)."""
    try:
        wiring.log_store().forget_final_hand_off(job_ids, handed_off_at)
    except JobsyncError:
        logger.exception("could not give back final tails", extra={"jobs": len(job_ids)})


@dataclass
class FinalTailsReport:
    kept: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    settled_before: list[str] = field(default_factory=list)  # kept or gone already: not fetched again
    busy: list[str] = field(default_factory=list)  # another run holds the lease
    failed: list[str] = field(default_factory=list)  # still pending: a later run tries again
    not_tried: list[str] = field(default_factory=list)  # the provider was in trouble, or time ran out


def keep_final_tails(
    job_ids: Iterable[str], clock: Callable[[], float] = time.time, handed_off_at: float | None = None
) -> FinalTailsReport:
    """Fetch and keep the final tails of `job_ids`, `final_log_workers` at a time (the tail keeper's work).

    A failure leaves the job pending for a later run. Throttling, an outage or refused credentials stop
    the rest of this run: the next request would meet them too. `handed_off_at` is when the jobs were
    handed off (the hand-off says): a settled job leaves that record, and one that failed or was not
    tried is given back, so that the poller's next tick hands it off again.
    """
    report = FinalTailsReport()
    stop = threading.Event()
    lock = threading.Lock()
    ids = sorted(set(job_ids))
    if not ids:
        return report

    def run(job_id: str) -> None:
        outcome = _keep_one(job_id, stop, clock, handed_off_at)
        with lock:
            getattr(report, outcome).append(job_id)

    workers = min(get_settings().final_log_workers, len(ids))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tail-keeper") as pool:
        # Each fetch runs in a copy of this context: the invocation's deadline bounds its retries too.
        futures = [pool.submit(contextvars.copy_context().run, run, job_id) for job_id in ids]
        for future in futures:
            future.result()
    if handed_off_at is not None and (report.failed or report.not_tried):
        _give_back(sorted(report.failed + report.not_tried), handed_off_at)
    logger.info(
        "final tails",
        extra={name: len(value) for name, value in report.__dict__.items()},
    )
    return report


def _keep_one(job_id: str, stop: threading.Event, clock: Callable[[], float], handed_off_at: float | None) -> str:
    left = seconds_left()
    if stop.is_set() or (left is not None and left < _MIN_SECONDS_FOR_A_FETCH):
        return "not_tried"
    logs = wiring.log_store()
    now = clock()
    first_try = logs.lease_final(job_id, now, LEASE_SECONDS)
    if first_try is None:
        if logs.final_state(job_id) is not None:
            logs.drop_pending_final(job_id, handed_off_at)  # settled by an earlier run that died before tidying up
            return "settled_before"
        return "busy"
    if now - first_try >= GIVE_UP_AFTER_SECONDS:
        logger.warning("final tail given up: the provider has deleted it by now", extra={"job_id": job_id})
        logs.settle_final(job_id, GONE, now, handed_off_at)
        return "gone"
    job = wiring.job_store().get(job_id)
    if job is None:
        logs.settle_final(job_id, GONE, now, handed_off_at)
        return "gone"
    try:
        observation = provider_client(job.provider).get_job(job.job_id, job.kind)
    except ProviderNotFound:
        logs.settle_final(job_id, GONE, clock(), handed_off_at)
        return "gone"
    except ProviderError as exc:
        logs.release_final(job_id)
        logger.warning("final tail fetch failed", extra={"job_id": job_id, "error": str(exc)})
        if _about_the_provider(exc):
            stop.set()
        return "failed"
    # The job's final state goes through the one write path; its tail is kept here, explicitly.
    record_observation(replace(observation, logs=None), current=job)
    if observation.status is None or not observation.status.is_terminal:
        logs.release_final(job_id)  # not ended after all: its final tail is still to come
        return "failed"
    if not observation.logs:
        logs.settle_final(job_id, GONE, clock(), handed_off_at)
        return "gone"
    keep_logs(job_id, observation.logs, clock())
    logs.settle_final(job_id, KEPT, clock(), handed_off_at)
    return "kept"


def _about_the_provider(exc: ProviderError) -> bool:
    """True when the failure says nothing about the one job asked for: the next request would meet it too."""
    if isinstance(exc, (ProviderRateLimited, ProviderAuthError)):
        return True
    return exc.status is None or not 400 <= exc.status < 500
