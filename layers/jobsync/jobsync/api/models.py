"""Request and answer shapes of the HTTP API (the contract's JSON)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
)

from jobsync.domain import identifiers
from jobsync.domain.job import Job
from jobsync.domain.status import JobStatus
from jobsync.providers.registry import PROVIDERS

Stage = Literal["Preprocessing", "Warmup", "Training", "Validation", "Saving checkpoint"]


class ApiModel(BaseModel):
    # Built on first use: a function validates two or three of these, not all of them (cold start).
    model_config = ConfigDict(defer_build=True)


class Strict(ApiModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# ---- requests -------------------------------------------------------------


def _whole_number(value: object) -> object:
    # A query string says "50"; "5.0", "1e2" or " 5" is not a count.
    if isinstance(value, str) and not value.isdigit():
        raise ValueError("must be a whole number")
    return value


def _true_or_false(value: object) -> object:
    if value not in ("true", "false", True, False):
        raise ValueError("must be true or false")
    return value in ("true", True)


def _one_of_the_providers(value: object) -> object:
    if isinstance(value, str) and value not in PROVIDERS:
        raise ValueError(f"must be one of: {', '.join(PROVIDERS)}")
    return value


QueryCount = Annotated[int, BeforeValidator(_whole_number)]
QueryFlag = Annotated[bool, BeforeValidator(_true_or_false)]
# The domain's one definition of a job id (jobsync.domain.identifiers), as a validated and documented type.
JobId = Annotated[str, AfterValidator(identifiers.job_id), WithJsonSchema(identifiers.json_schema())]
ProviderName = Annotated[
    str, BeforeValidator(_one_of_the_providers), WithJsonSchema({"type": "string", "enum": list(PROVIDERS)})
]


class ListJobsQuery(Strict):
    limit: QueryCount = Field(default=50, ge=1, le=500)
    provider: ProviderName | None = None
    status: JobStatus | None = None
    sync_active: QueryFlag = False
    cursor: str | None = Field(default=None, min_length=1, max_length=2048)


class JobPath(Strict):
    job_id: JobId


class JobLogsQuery(Strict):
    tail: QueryCount = Field(default=200, ge=1, le=2000, description="how many of the newest lines to answer")


class PollingSettingBody(Strict):
    enabled: StrictBool | None = Field(description="true/false forces polling on/off; null returns to automatic")


# ---- answers --------------------------------------------------------------


class JobOut(ApiModel):
    # A domain Job as the API shows it, without its bookkeeping (kind, predict_time, version). Read from the
    # Job's attributes, so is_active, is_terminal and duration_seconds are the domain's own answers.
    model_config = ConfigDict(from_attributes=True, defer_build=True)

    job_id: str
    provider: str
    status: JobStatus
    model: str | None
    model_version: str | None = Field(description="the provider's id of the model version the job ran")
    config_name: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    cost_usd: float | None
    hardware_type: str | None
    error_message: str | None
    output_url: str | None
    is_active: bool
    is_terminal: bool
    duration_seconds: float | None
    price_per_second_usd: float | None = Field(description="USD per second of hardware_type, the price cost_usd uses")

    @classmethod
    def from_job(cls, job: Job) -> JobOut:
        return cls.model_validate(job)


class JobListOut(ApiModel):
    jobs: list[JobOut]
    next_cursor: str | None


class TransitionOut(ApiModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)

    status: JobStatus
    at: str | None = Field(
        description="When the job reached this status (UTC ISO 8601): the provider's time for it where it gives "
        "one, else when jobsync saw it; null only for a job stored before histories were kept that has no time"
    )


class JobWithHistoryOut(JobOut):
    """One job as `GET /api/cloud/jobs/{job_id}` and cancel answer it: a list's job plus its status history."""

    history: list[TransitionOut] = Field(description="The job's status transitions, oldest first (at most 50)")

    @classmethod
    def from_job(cls, job: Job) -> JobWithHistoryOut:
        # Job.status_history: a job stored before histories were kept gets one derived from its timestamps.
        return cls.model_validate(replace(job, history=job.status_history))


class JobDetailOut(ApiModel):
    job: JobWithHistoryOut


class InlineProgressOut(ApiModel):
    job_id: str
    stage: Stage | None
    last_log: str | None
    progress: float | None = Field(ge=0, le=100)
    eta_seconds: float | None = None


class JobLogsOut(ApiModel):
    job_id: str
    lines: list[str] = Field(description="the newest lines, oldest first (newest last)")
    truncated: bool = Field(description="true when the log has older lines than these")
    source: Literal["provider", "kept"] = Field(
        description="provider: read from the provider just now; kept: the tail jobsync keeps (the last 64 KiB)"
    )


class SyncOut(ApiModel):
    synced: int
    updated: int
    message: str
    history_complete: bool = Field(
        description="false while the rest of the provider's history is being imported in the background "
        "(sync_progress messages report it); a sync during the import starts no second one"
    )


class ValidateOut(ApiModel):
    valid: bool
    username: str | None
    error: str | None


class MetricsOut(ApiModel):
    job_count: int
    active_count: int
    jobs_by_status: dict[str, int]
    total_cost_usd: float


class PollingOut(ApiModel):
    enabled: bool
    interval_seconds: int


class WebhooksOut(ApiModel):
    configured: bool


class ConfigOut(ApiModel):
    websocket_url: str | None
    polling: PollingOut
    webhooks: WebhooksOut


class LastTickOut(ApiModel):
    at: str | None = Field(
        description="When the last recorded poller tick started (ISO-8601 UTC); null before the first. Every "
        "failing tick is recorded; a tick that goes well only after a failure or as the first, so with no error "
        "this is when polling last started going well, not the latest tick (a healthy, idle tick writes nothing)"
    )
    error: str | None = Field(description="What failed in that tick; null when it went well")


class PollingStatusOut(ApiModel):
    is_active: bool
    preference: bool | None
    last_tick: LastTickOut


class WebhookOut(ApiModel):
    received: bool
    duplicate: bool
    job_id: str | None
    status: JobStatus | None


class HealthOut(ApiModel):
    status: Literal["ok"]


class ErrorOut(ApiModel):
    error: str
    message: str
