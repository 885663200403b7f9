"""Refreshing every active job from its provider's lists (the poller and `sync_active`).

Lists give a hundred jobs a request, so a tick over a thousand active jobs
costs a few dozen requests rather than a thousand. A job is fetched on its
own only when it just ended (its last logs are deleted an hour later) or when
the lists no longer show it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.domain.job import Job, JobObservation, apply_observation
from jobsync.domain.status import JobStatus
from jobsync.domain.timestamps import sortable
from jobsync.observability import count, logger
from jobsync.providers.base import (
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
)
from jobsync.providers.registry import provider_client
from jobsync.services.job_updates import record_observation

# Jobs the lists did not show are fetched one by one, but never more than this many a tick.
MAX_SINGLE_FETCHES = 50
# How long an active job must keep answering 404 before it is taken as ended.
FORGOTTEN_AFTER_SECONDS = 15 * 60


@dataclass
class RefreshReport:
    provider: str
    active: int = 0
    updated: int = 0
    list_requests: int = 0
    single_fetches: int = 0
    errors: list[str] = field(default_factory=list)


def refresh_active_jobs(provider: str) -> RefreshReport:
    """Bring every active job of `provider` up to date. Provider failures are reported, never raised."""
    report = RefreshReport(provider=provider)
    active = wiring.job_store().active(provider)
    report.active = len(active)
    if not active:
        return report
    client = provider_client(provider)
    unseen = {job.job_id: job for job in active}
    walked = {kind for kind in sorted({job.kind for job in active}) if _walk_list(client, kind, unseen, report)}
    # Where a list could not be read, its jobs wait for the next tick rather than cost a request each.
    missing = [job for job in unseen.values() if job.kind in walked]
    # A random share each tick: when more are missing than a tick may fetch, none waits forever.
    _fetch_one_by_one(client, random.sample(missing, min(len(missing), MAX_SINGLE_FETCHES)), report)
    return report


def _walk_list(client: ProviderClient, kind: str, unseen: dict[str, Job], report: RefreshReport) -> bool:
    """Read `kind` pages newest first until every active job of that kind was seen or the list is older.

    False when the provider failed part-way.
    """
    page_handle: str | None = None
    max_pages = -(-get_settings().sync_cap_per_list // 100)  # the same depth a sync reads
    while _oldest_unseen(unseen, kind) is not None and max_pages > 0:
        max_pages -= 1
        try:
            page = client.list_page(kind, page_handle)
        except ProviderError as exc:
            _failed(report, f"{kind} list: {exc}")
            return False
        report.list_requests += 1
        for observation in page.jobs:
            job = unseen.pop(observation.job_id, None)
            if job is not None:
                _refresh_one(client, job, observation, report)
        oldest_unseen = _oldest_unseen(unseen, kind)
        if not page.next_page or not page.jobs or oldest_unseen is None:
            return True
        listed = [stamp for observation in page.jobs if (stamp := sortable(observation.created_at))]
        if listed and min(listed) < oldest_unseen:
            return True  # the list is past every job we wait for: they are not in it
        page_handle = page.next_page
    return True


def _oldest_unseen(unseen: dict[str, Job], kind: str) -> str | None:
    """How far back the list must be read; jobs without a creation time are fetched on their own instead."""
    stamps = [stamp for job in unseen.values() if job.kind == kind and (stamp := sortable(job.created_at))]
    return min(stamps) if stamps else None


def _refresh_one(client: ProviderClient, job: Job, observation: JobObservation, report: RefreshReport) -> None:
    if apply_observation(job, observation, wiring.pricing()) is None:
        return  # nothing new: no fetch, no write
    _record(job, with_final_logs(client, job, observation, report), report)


def with_final_logs(
    client: ProviderClient, job: Job, listed: JobObservation, report: RefreshReport | None = None
) -> JobObservation:
    """`listed`, or the job fetched on its own when `listed` says it just ended.

    Lists omit the logs, and the provider deletes them an hour after the end:
    this is the last chance to keep the tail. Should the fetch fail, the listed
    state still counts.
    """
    just_ended = job.is_active and listed.status is not None and listed.status.is_terminal
    if not just_ended:
        return listed
    try:
        if report is not None:
            report.single_fetches += 1
        return client.get_job(job.job_id, job.kind)
    except ProviderError as exc:
        if report is not None:
            _failed(report, f"{job.job_id}: {exc}")
        else:
            logger.warning("could not fetch an ended job's logs", extra={"job_id": job.job_id, "error": str(exc)})
        return listed


def _fetch_one_by_one(client: ProviderClient, jobs: list[Job], report: RefreshReport) -> None:
    """Fetch each job on its own. Only a 404 answer counts towards ending a job; a provider that fails as a
    whole (throttling, 5xx, timeouts, answers cut short, refused credentials) stops the fetches: the rest
    wait for the next tick rather than each spend their retries on it."""
    for job in jobs:
        try:
            report.single_fetches += 1
            observation = client.get_job(job.job_id, job.kind)
        except ProviderNotFound:
            if not _gone_for_good(job):
                continue
            observation = _forgotten(job, client.display_name)
        except ProviderError as exc:
            _failed(report, f"{job.job_id}: {exc}")
            if _about_the_provider(exc):
                return  # asking again now only makes the throttling, or the outage, worse
            continue
        if apply_observation(job, observation, wiring.pricing()) is not None:
            _record(job, observation, report)


def _about_the_provider(exc: ProviderError) -> bool:
    """True when the failure says nothing about the one job asked for: the next request would meet it too."""
    if isinstance(exc, (ProviderRateLimited, ProviderAuthError)):
        return True
    return exc.status is None or not 400 <= exc.status < 500


def _gone_for_good(job: Job) -> bool:
    """True once the provider has answered 404 for the job without a break for FORGOTTEN_AFTER_SECONDS.

    One 404 is not enough to end a job for good: a misrouted request or a token
    of another account answers 404 too. Only a 404 answer is noted: a throttle,
    a 5xx, a timeout or an answer cut short says nothing about the job.
    """
    since = wiring.state_store().note_not_found(job.job_id, time.time(), continuity_seconds=FORGOTTEN_AFTER_SECONDS)
    return time.time() - since >= FORGOTTEN_AFTER_SECONDS


def _forgotten(job: Job, provider_name: str) -> JobObservation:
    """An active job its provider no longer knows (a training queued too long answers 404) has ended:
    left active, it would cost a request every tick forever."""
    logger.warning("active job unknown to its provider: marked failed", extra={"job_id": job.job_id})
    return JobObservation(
        job_id=job.job_id,
        provider=job.provider,
        status=JobStatus.FAILED,
        provider_status="not_found",
        error_message=f"{provider_name} no longer knows this job (404)",
    )


def _record(job: Job, observation: JobObservation, report: RefreshReport) -> None:
    try:
        if record_observation(observation, current=job).changed:
            report.updated += 1
    except Exception as exc:  # noqa: BLE001 - one failing job never stops the others
        logger.exception("could not store a refreshed job", extra={"job_id": job.job_id})
        report.errors.append(f"{job.job_id}: {type(exc).__name__}")


def _failed(report: RefreshReport, message: str) -> None:
    count("ProviderErrors")
    logger.warning("provider call failed during refresh", extra={"provider": report.provider, "error": message})
    report.errors.append(message)
