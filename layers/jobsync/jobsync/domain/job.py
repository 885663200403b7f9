"""The job as jobsync knows it, and how a provider's observation changes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from jobsync.domain.cost import HardwarePricing, price_per_second
from jobsync.domain.history import Timestamps, Transition, derived_history, extended, steps_into
from jobsync.domain.status import JobStatus, may_move
from jobsync.domain.timestamps import seconds_between, utc_now_iso

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
    model_version: str | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    provider: str
    status: JobStatus
    kind: str = "prediction"
    model: str | None = None
    # The provider's id of the model version the job ran (Replicate's `version`); not the lock counter below.
    model_version: str | None = None
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
    # Status transitions, oldest first (domain/history.py); empty for a job stored before they were kept.
    history: tuple[Transition, ...] = ()

    @property
    def is_active(self) -> bool:
        return self.status.is_active

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def duration_seconds(self) -> float | None:
        return seconds_between(self.started_at, self.completed_at)

    @property
    def price_per_second_usd(self) -> float | None:
        # The price the cost is reckoned at: a running job's cost so far is its elapsed time times this.
        return price_per_second(self.hardware_type) if self.hardware_type else None

    @property
    def timestamps(self) -> Timestamps:
        return Timestamps(self.created_at, self.started_at, self.completed_at)

    @property
    def status_history(self) -> tuple[Transition, ...]:
        """The recorded transitions, or for a job stored before they were kept, what its timestamps prove."""
        return self.history or derived_history(self.status, self.timestamps)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = self.status.value
        record["history"] = [transition.to_record() for transition in self.history]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in record.items() if key in known}
        values["status"] = JobStatus(values["status"])
        values["history"] = tuple(Transition.from_record(item) for item in values.get("history") or ())
        return cls(**values)


# Facts an observation may fill in or correct; the status and the kind are handled on their own.
_OBSERVED_FACTS = (
    "model",
    "model_version",
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


def new_job(observation: JobObservation, pricing: HardwarePricing, *, seen_at: str | None = None) -> Job:
    """The job `observation` describes, first seen at `seen_at` (now when not given; UTC ISO 8601)."""
    facts = {name: getattr(observation, name) for name in _OBSERVED_FACTS}
    facts["kind"] = observation.kind or PREDICTION
    status = observation.status or JobStatus.PENDING
    job = Job(job_id=observation.job_id, provider=observation.provider, status=status, **facts)
    history = extended((), steps_into(status, None, job.timestamps, seen_at or utc_now_iso()))
    return _priced(replace(job, history=history), pricing)


def apply_observation(
    job: Job, observation: JobObservation, pricing: HardwarePricing, *, seen_at: str | None = None
) -> Job | None:
    """The job after `observation`, or None when the observation changes nothing.

    Forward-only: an observation with an unknown status, or one that would move
    the job backwards or out of its first terminal status, changes nothing at
    all. A same-status observation may add facts; a terminal job only gets
    facts it is missing (its first terminal report stands). A change of
    status is added to the job's history, at the provider's time for it or
    else `seen_at` (now when not given).
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
    if changed.status != job.status:
        steps = steps_into(changed.status, job.status, changed.timestamps, seen_at or utc_now_iso())
        changed = replace(changed, history=extended(job.status_history, steps))
    return None if changed == job else changed
