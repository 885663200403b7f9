"""A short digest of what the provider last said about a job: equal digests mean nothing new.

Stored with each job, it lets a refresh read only a few small attributes of
each active job (its id, kind, creation time and this digest) and compare
them with the lists: only a job whose listed digest differs is read whole and
applied. A differing digest never means a change by itself (the observation
may leave out a fact, or be stale): `apply_observation` decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from jobsync.domain.job import _OBSERVED_FACTS, Job, JobObservation

_SEPARATOR = "\x1f"


def _text(value: object) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))  # 30 read back from DynamoDB is the 30.0 a provider said
    return str(value)


def _digest(status: str, facts: Iterable[object]) -> str:
    text = _SEPARATOR.join([status, *map(_text, facts)])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def job_digest(job: Job) -> str:
    return _digest(job.status.value, (getattr(job, name) for name in _OBSERVED_FACTS))


def observation_digest(observation: JobObservation) -> str | None:
    """None for a status jobsync does not know (such an observation changes nothing)."""
    if observation.status is None:
        return None
    return _digest(observation.status.value, (getattr(observation, name) for name in _OBSERVED_FACTS))
