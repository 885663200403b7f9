"""A job's status history: the transitions it went through, oldest first, each with when it happened.

A transition's time is the provider's own when the provider gives one for it
(created_at for queued, started_at for running, completed_at for an end),
else the time jobsync saw it. A status the provider's timestamps prove the
job passed through on the way (a job first seen completed was queued at its
created_at and running at its started_at) is recorded too, so a job imported
long after it ended still has a history worth reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobsync.domain.status import JobStatus
from jobsync.domain.timestamps import parse_timestamp, sortable

# Statuses only move forward, so a history rarely holds more than five entries; the bound is for safety.
MAX_HISTORY = 50


@dataclass(frozen=True)
class Transition:
    status: JobStatus
    # UTC ISO 8601 (fixed width, microseconds); None only for a job stored before history was kept that
    # carries no timestamp at all.
    at: str | None

    def to_record(self) -> dict[str, Any]:
        return {"status": self.status.value, "at": self.at}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Transition:
        return cls(status=JobStatus(record["status"]), at=record.get("at"))


@dataclass(frozen=True)
class Timestamps:
    """The provider's timestamps of a job, as far as they are known."""

    created_at: str | None
    started_at: str | None
    completed_at: str | None

    def of(self, status: JobStatus) -> str | None:
        """The provider's time for reaching `status`, normalised to UTC; None when it gives none."""
        if status == JobStatus.QUEUED:
            stamp = self.created_at
        elif status == JobStatus.RUNNING:
            stamp = self.started_at
        elif status.is_terminal:
            stamp = self.completed_at
        else:  # pending and uploading are jobsync's own statuses: no provider stamp says when
            stamp = None
        return sortable(stamp) or None


def _path_to(status: JobStatus) -> list[JobStatus]:
    """The statuses a job in `status` may have passed through (its own last)."""
    if status.rank <= JobStatus.QUEUED.rank:
        return [status]
    if status == JobStatus.RUNNING:
        return [JobStatus.QUEUED, JobStatus.RUNNING]
    return [JobStatus.QUEUED, JobStatus.RUNNING, status]


def steps_into(
    status: JobStatus, previous: JobStatus | None, stamps: Timestamps, seen_at: str | None
) -> list[Transition]:
    """The transitions of a job moving from `previous` (None: a job seen for the first time) to `status`.

    `status` itself is always recorded (at the provider's time for it, else `seen_at`); a status between
    the two only when the provider's timestamps prove the job passed through it.
    """
    floor = previous.rank if previous is not None else -1
    steps = []
    for step in _path_to(status):
        if step.rank <= floor:
            continue
        at = stamps.of(step)
        if step == status:
            steps.append(Transition(step, at or seen_at))
        elif at is not None:
            steps.append(Transition(step, at))
    return steps


def derived_history(status: JobStatus, stamps: Timestamps) -> tuple[Transition, ...]:
    """A history for a job stored before histories were kept: what its timestamps prove.

    Its current status is always there; with no provider time for it, at the latest time the job carries.
    """
    latest = max(
        (sortable(stamp) for stamp in (stamps.created_at, stamps.started_at, stamps.completed_at)),
        default="",
    )
    return extended((), steps_into(status, None, stamps, latest or None))


def extended(history: tuple[Transition, ...], steps: list[Transition]) -> tuple[Transition, ...]:
    """`history` with `steps` appended, keeping the last MAX_HISTORY.

    A provider stamp out of order (clock skew between its machines, or our own clock against the
    provider's) must not make the history run backwards in time: a step earlier than the one before it
    takes that one's time.
    """
    ordered = list(history)
    for step in steps:
        last = ordered[-1].at if ordered else None
        if last and step.at and _before(step.at, last):
            step = Transition(step.status, last)
        ordered.append(step)
    return tuple(ordered[-MAX_HISTORY:])


def _before(first: str, second: str) -> bool:
    a, b = parse_timestamp(first), parse_timestamp(second)
    return a is not None and b is not None and a < b
