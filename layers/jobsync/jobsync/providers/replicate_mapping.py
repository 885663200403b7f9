"""Replicate's prediction and training objects as jobsync's JobObservation.

Pure data mapping, shared by list pages, single gets and webhook bodies:
Replicate's statuses to jobsync's, and every field bounded and made storable
(a job item must stay small and valid UTF-8 whatever Replicate sends). Only
`input.config_name` is kept from a job's input: the rest may hold secrets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from jobsync.domain import identifiers
from jobsync.domain.job import JobObservation
from jobsync.domain.status import JobStatus

PROVIDER = "replicate"

STATUS_MAP: Mapping[str, JobStatus] = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.CANCELLED,
}

TEXT_LIMIT = 2048
ERROR_LIMIT = 8192
# Logs grow for hours; only their end is ever read (the stored tail, the progress line).
LOG_LIMIT = 65_536
# A year of GPU time is already absurd; beyond it the number is junk, not a cost to store.
MAX_PREDICT_SECONDS = 366 * 86_400


def storable(value: str, limit: int = TEXT_LIMIT) -> str:
    """`value` made storable as UTF-8 (lone surrogates become '?') and at most `limit` characters."""
    value = value[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def storable_string(value: Any) -> str | None:
    """`value` made storable when it is a string, else None."""
    return storable(value) if isinstance(value, str) else None


def _log_text(value: Any) -> str | None:
    return storable(value[-LOG_LIMIT:], LOG_LIMIT) if isinstance(value, str) else None


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _output_url(output: Any) -> str | None:
    if _is_url(output):
        return storable(output)
    if isinstance(output, list):
        return next((storable(item) for item in output if _is_url(item)), None)
    if isinstance(output, dict) and _is_url(output.get("weights")):
        return storable(output["weights"])
    return None


def _error_message(error: Any) -> str | None:
    if error is None or error == "":
        return None
    if isinstance(error, str):
        return storable(error, ERROR_LIMIT)
    try:
        return storable(json.dumps(error, ensure_ascii=False, sort_keys=True, default=str), ERROR_LIMIT)
    except (TypeError, ValueError, RecursionError):
        return storable(str(error), ERROR_LIMIT)


def _predict_time(metrics: Any) -> float | None:
    if not isinstance(metrics, dict):
        return None
    value = metrics.get("predict_time")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) and 0 <= value <= MAX_PREDICT_SECONDS else None


def _kind_of(item: dict[str, Any]) -> str | None:
    """A webhook body does not say its kind, but a training's own URL does."""
    urls = item.get("urls")
    own_url = urls.get("get") if isinstance(urls, dict) else None
    if isinstance(own_url, str) and "/trainings/" in own_url:
        return "training"
    return None


def observation_from(item: Any, kind: str | None) -> JobObservation:
    """One Replicate prediction or training object as a JobObservation.

    `kind` is what the caller knows ("prediction", "training"), or None to
    infer it from the object (a webhook body). Raises ValueError when `item`
    is not an object whose `id` is a job id (jobsync.domain.identifiers): such
    an item is refused, never stored under a cut or altered id.
    """
    if not isinstance(item, dict):
        raise ValueError(f"a Replicate job must be an object, not {type(item).__name__}")
    if "id" not in item:
        raise ValueError("a Replicate job needs an id")
    job_id = identifiers.job_id(item["id"])
    raw_status = item.get("status")
    provider_status = storable(raw_status) if isinstance(raw_status, str) else ""
    job_input = item.get("input")
    config_name = job_input.get("config_name") if isinstance(job_input, dict) else None
    return JobObservation(
        job_id=job_id,
        provider=PROVIDER,
        status=STATUS_MAP.get(provider_status.strip().lower()),
        provider_status=provider_status,
        kind=kind or _kind_of(item),
        model=storable_string(item.get("model")),
        model_version=storable_string(item.get("version")),
        config_name=storable_string(config_name),
        created_at=storable_string(item.get("created_at")),
        started_at=storable_string(item.get("started_at")),
        completed_at=storable_string(item.get("completed_at")),
        error_message=_error_message(item.get("error")),
        output_url=_output_url(item.get("output")),
        predict_time=_predict_time(item.get("metrics")),
        logs=_log_text(item.get("logs")),
    )
