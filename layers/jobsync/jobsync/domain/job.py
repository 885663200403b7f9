"""The job as jobsync knows it, and how a provider's observation changes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from jobsync.domain.cost import HardwarePricing
from jobsync.domain.status import JobStatus, may_move
from jobsync.domain.timestamps import seconds_between

PREDICTION, TRAINING = "prediction", "training"


@dataclass(frozen=True)
class JobObservation:
    """What a provider said about one job at one moment.

    `status` is None when the provider's status has no jobsync meaning.
    """

    job_id: str
    provider: str
    status: JobStatus | None
    provider_status: str
    # "prediction" or "training"; None when the source does not say (webhooks).
    kind: str | None = None
    model: str | None = None
    config_name: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None
    output_url: str | None = None
    predict_time: float | None = None
    logs: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    provider: str
    status: JobStatus
    kind: str = "prediction"
    model: str | None = None
    config_name: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    predict_time: float | None = None
    cost_usd: float | None = None
    hardware_type: str | None = None
    error_message: str | None = None
    output_url: str | None = None
    # Optimistic-lock counter: every stored change increments it.
    version: int = 0

    @property
    def is_active(self) -> bool:
        return self.status.is_active

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def duration_seconds(self) -> float | None:
        return seconds_between(self.started_at, self.completed_at)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = self.status.value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in record.items() if key in known}
        values["status"] = JobStatus(values["status"])
        return cls(**values)


# Facts an observation may fill in or correct; the status and the kind are handled on their own.
_OBSERVED_FACTS = (
    "model",
    "config_name",
    "created_at",
    "started_at",
    "completed_at",
    "error_message",
    "output_url",
    "predict_time",
)


def _priced(job: Job, pricing: HardwarePricing) -> Job:
    cost, sku = pricing.cost_usd(job.model, job.predict_time)
    return replace(job, cost_usd=cost, hardware_type=sku)


def new_job(observation: JobObservation, pricing: HardwarePricing) -> Job:
    facts = {name: getattr(observation, name) for name in _OBSERVED_FACTS}
    facts["kind"] = observation.kind or PREDICTION
    status = observation.status or JobStatus.PENDING
    return _priced(Job(job_id=observation.job_id, provider=observation.provider, status=status, **facts), pricing)


def apply_observation(job: Job, observation: JobObservation, pricing: HardwarePricing) -> Job | None:
    """The job after `observation`, or None when the observation changes nothing.

    Forward-only: an observation with an unknown status, or one that would move
    the job backwards or out of its first terminal status, changes nothing at
    all. A same-status observation may add facts; a terminal job only gets
    facts it is missing (its first terminal report stands).
    """
    observed = observation.status
    if observed is None or not may_move(job.status, observed):
        return None
    fill_only = job.is_terminal
    updates: dict[str, Any] = {"status": observed}
    for name in _OBSERVED_FACTS:
        value = getattr(observation, name)
        if value is None or (fill_only and getattr(job, name) is not None):
            continue
        updates[name] = value
    # A training is a prediction underneath and shows in both lists: the narrower kind sticks.
    if observation.kind == TRAINING:
        updates["kind"] = TRAINING
    changed = _priced(replace(job, **updates), pricing)
    return None if changed == job else changed
