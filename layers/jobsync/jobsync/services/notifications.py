"""Which notifications a change to a job produces, and what each one says. Pure: no I/O.

Two events, each at most once per job:

- `job_ended`: the job reached a terminal status (completed, failed, cancelled);
- `job_cost_threshold_crossed`: its cost reached the configured threshold.

A change is the (new, old) pair of a job item as the jobs table's stream hands
it over, whatever wrote it. A job first stored already ended (a history import,
or a webhook about a job jobsync never saw) counts only when it ended within
`FRESH_SECONDS` of the change: importing ten thousand old jobs must not send ten
thousand messages, while a short prediction that started and ended between two
polls is still news.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jobsync.domain.job import Job
from jobsync.domain.timestamps import parse_timestamp

JOB_ENDED = "job_ended"
COST_THRESHOLD_CROSSED = "job_cost_threshold_crossed"
EVENT_TYPES = (JOB_ENDED, COST_THRESHOLD_CROSSED)
# A job first seen already ended is news only if it ended this recently.
FRESH_SECONDS = 15 * 60


@dataclass(frozen=True)
class Notification:
    """One event about one job, as published to the topic and handed to the webhook channel."""

    type: str
    job: Job
    previous_status: str | None
    at: datetime
    cost_threshold_usd: float | None = None
    dashboard_url: str | None = None

    @property
    def event_key(self) -> str:
        """What makes this event unique for its job: the key of its exactly-once claim."""
        if self.type == COST_THRESHOLD_CROSSED:
            # A new threshold is a new event: a job that crossed $5 may still cross $50.
            return f"cost>={self.cost_threshold_usd:g}"
        return "ended"

    @property
    def event_id(self) -> str:
        return f"{self.job.job_id}#{self.event_key}"

    @property
    def job_url(self) -> str | None:
        if not self.dashboard_url:
            return None
        return f"{self.dashboard_url.split('#', 1)[0].rstrip('/')}/#/jobs/{self.job.job_id}"

    def payload(self) -> dict[str, Any]:
        """The message: what the topic publishes and the webhook channel sends (JSON-ready)."""
        job = self.job
        return {
            "type": self.type,
            "event_id": self.event_id,
            "job_id": job.job_id,
            "provider": job.provider,
            "kind": job.kind,
            "model": job.model,
            "status": job.status.value,
            "previous_status": self.previous_status,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "completed_at": job.completed_at,
            "duration_seconds": job.duration_seconds,
            "cost_usd": job.cost_usd,
            "hardware_type": job.hardware_type,
            "cost_threshold_usd": self.cost_threshold_usd,
            "error_message": job.error_message,
            "job_url": self.job_url,
            "at": self.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def subject(self) -> str:
        """A one-line summary (an e-mail subscription's subject: at most 100 characters)."""
        what = self.job.model or self.job.job_id
        if self.type == COST_THRESHOLD_CROSSED:
            line = f"jobsync: {what} cost ${self.job.cost_usd:.2f} (threshold ${self.cost_threshold_usd:g})"
        else:
            line = f"jobsync: {what} {self.job.status.value}"
        # SNS takes an ASCII subject of at most 100 characters.
        line = line.encode("ascii", "replace").decode()
        return line if len(line) <= 100 else line[:97] + "..."


def notifications_for(
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    at: datetime,
    cost_threshold_usd: float | None = None,
    dashboard_url: str | None = None,
) -> list[Notification]:
    """The notifications a write of a job item produces: `new` and `old` as plain records ({} for none).

    `at` is when the change happened (the stream record's time): it decides whether a job first
    stored already ended is fresh news.
    """
    if "job_id" not in new or "status" not in new:
        return []  # not a job item (or a removal)
    job = Job.from_record(new)
    was = Job.from_record(old) if "job_id" in old and "status" in old else None
    if was is None and job.is_terminal and not _ended_recently(job, at):
        return []
    previous = was.status.value if was else None
    found: list[Notification] = []
    if job.is_terminal and (was is None or not was.is_terminal):
        found.append(Notification(JOB_ENDED, job, previous, at, dashboard_url=dashboard_url))
    if cost_threshold_usd is not None and _crossed(job, was, cost_threshold_usd):
        found.append(
            Notification(
                COST_THRESHOLD_CROSSED,
                job,
                previous,
                at,
                cost_threshold_usd=cost_threshold_usd,
                dashboard_url=dashboard_url,
            )
        )
    return found


def _crossed(job: Job, was: Job | None, threshold: float) -> bool:
    if job.cost_usd is None or job.cost_usd < threshold:
        return False
    return was is None or was.cost_usd is None or was.cost_usd < threshold


def _ended_recently(job: Job, at: datetime) -> bool:
    ended = parse_timestamp(job.completed_at)
    return ended is not None and (at - ended).total_seconds() <= FRESH_SECONDS
