"""Inline progress of a running job from its recent log lines.

The log is read through services/logs.py: from the provider at most once per
`log_refresh_seconds` per job, whatever the number of clients and Lambda
instances asking (they share one claim), and otherwise from the kept tail.
"""

from __future__ import annotations

from jobsync.domain.progress import NO_PROGRESS, InlineProgress, parse_progress
from jobsync.domain.status import JobStatus
from jobsync.services.listing import get_job
from jobsync.services.logs import read_logs


def inline_progress(job_id: str) -> InlineProgress:
    job = get_job(job_id)
    if job.status != JobStatus.RUNNING:
        return NO_PROGRESS
    read = read_logs(job)
    if read.job.status != JobStatus.RUNNING:
        return NO_PROGRESS
    return parse_progress("\n".join(read.lines))
