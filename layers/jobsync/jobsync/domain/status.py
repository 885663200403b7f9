"""Job statuses and the one rule for moving between them: only forward."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    PENDING = "pending"
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_terminal

    @property
    def rank(self) -> int:
        # All terminal statuses share the top rank: none may replace another.
        return _RANK[self]


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
_RANK = {
    JobStatus.PENDING: 0,
    JobStatus.UPLOADING: 1,
    JobStatus.QUEUED: 2,
    JobStatus.RUNNING: 3,
    JobStatus.COMPLETED: 4,
    JobStatus.FAILED: 4,
    JobStatus.CANCELLED: 4,
}


def may_move(current: JobStatus, observed: JobStatus) -> bool:
    """True when a job in `current` may take `observed` (same status counts: it may carry new facts)."""
    if current.is_terminal:
        return observed == current
    return observed.rank >= current.rank
