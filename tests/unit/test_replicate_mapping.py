"""Replicate's job objects as JobObservations: status mapping, fields kept and dropped, bounds (no HTTP)."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jobsync.domain.identifiers import is_job_id
from jobsync.domain.status import JobStatus
from jobsync.providers.replicate_mapping import observation_from

BASE = "https://api.replicate.com/v1"

# Replicate's statuses, as its API documents them, and what each means to jobsync.
KNOWN_STATUSES = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.CANCELLED,
}


def prediction(job_id: str = "p1", **extra) -> dict:
    item = {
        "id": job_id,
        "model": "owner/flux-trainer",
        "status": "processing",
        "input": {"config_name": "lora-v1", "hf_token": "hf_should_never_be_kept"},
        "output": None,
        "logs": "Step 10/100",
        "error": None,
        "created_at": "2024-09-10T05:10:35.195332906Z",
        "metrics": {},
        "urls": {"get": f"{BASE}/predictions/{job_id}"},
    }
    item.update(extra)
    return item


@pytest.mark.parametrize(("raw", "expected"), [*KNOWN_STATUSES.items(), (" Succeeded ", JobStatus.COMPLETED)])
def test_each_replicate_status_maps_to_its_jobsync_status(raw, expected):
    observation = observation_from(prediction(status=raw), None)
    assert observation.status == expected
    assert observation.provider_status == raw
    assert observation.provider == "replicate"


def test_missing_or_non_string_status_is_unknown():
    assert observation_from({"id": "x"}, None).status is None
    assert observation_from({"id": "x", "status": 7}, None).status is None


def test_fields_are_mapped_and_input_secrets_dropped():
    observation = observation_from(
        prediction(status="failed", error="CUDA out of memory", metrics={"predict_time": 12.5}), "prediction"
    )
    assert observation.job_id == "p1"
    assert observation.kind == "prediction"
    assert observation.model == "owner/flux-trainer"
    assert observation.config_name == "lora-v1"
    assert observation.error_message == "CUDA out of memory"
    assert observation.predict_time == 12.5
    assert observation.logs == "Step 10/100"
    assert observation.model_version is None  # the object gave none
    version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
    assert observation_from(prediction(version=version), None).model_version == version
    assert observation_from(prediction(version=7), None).model_version is None
    stored = json.dumps([str(getattr(observation, f.name)) for f in fields(observation)])
    assert "hf_should_never_be_kept" not in stored


@pytest.mark.parametrize("metrics", [None, {}, {"predict_time": None}, {"predict_time": "3"}, {"total_time": 4}, []])
def test_predict_time_absent_when_metrics_lack_it(metrics):
    assert observation_from(prediction(metrics=metrics), None).predict_time is None


def test_missing_logs_and_non_string_config_name():
    item = prediction(input={"config_name": {"nested": 1}})
    del item["logs"]
    observation = observation_from(item, None)
    assert observation.logs is None
    assert observation.config_name is None


def test_non_string_error_is_stringified():
    observation = observation_from(prediction(error={"code": "E1", "msg": "bad"}), None)
    assert isinstance(observation.error_message, str)
    assert "E1" in observation.error_message and "bad" in observation.error_message


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("https://replicate.delivery/out.png", "https://replicate.delivery/out.png"),
        (
            ["not a url", 3, "https://replicate.delivery/a.png", "https://replicate.delivery/b.png"],
            "https://replicate.delivery/a.png",
        ),
        (
            {"version": "owner/model:abc", "weights": "https://replicate.delivery/weights.tar"},
            "https://replicate.delivery/weights.tar",
        ),
        ({"version": "owner/model:abc", "weights": None}, None),
        ("just some generated text", None),
        (["token", "s"], None),
        (None, None),
        (42, None),
    ],
)
def test_output_url(output, expected):
    assert observation_from(prediction(output=output), None).output_url == expected


def test_kind_inferred_from_a_trainings_own_url_when_not_given():
    assert observation_from(prediction(urls={"get": f"{BASE}/trainings/t1"}), None).kind == "training"
    assert observation_from(prediction(), None).kind is None


@pytest.mark.parametrize(
    "junk",
    [None, "p1", 3, [], {}, {"id": 5}, {"id": ""}, {"id": None}, {"id": "a" * 129}, {"id": "a/b"}, {"id": "ab "}],
)
def test_observation_from_rejects_junk(junk):
    with pytest.raises(ValueError):
        observation_from(junk, None)


def test_junk_and_huge_values_are_bounded_not_stored_or_crashed():
    item = {
        "id": "big1",
        "status": "failed",
        "model": "m" * 10_000,
        "error": "E" * 100_000,
        "logs": "x" * 200_000 + "\nStep 5/10",
        "metrics": {"predict_time": 10**400},
    }
    observation = observation_from(item, None)
    assert len(observation.model) <= 2048 and len(observation.error_message) <= 8192
    assert observation.logs.endswith("Step 5/10") and len(observation.logs) <= 65_536
    assert observation.predict_time is None
    assert observation_from({**item, "metrics": {"predict_time": 1e308}}, None).predict_time is None


def _storable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_stored(value: str, limit: int = 2048) -> str:
    """The documented rule: at most `limit` characters, a lone surrogate stored as '?'."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


HF_TOKEN = "hf_SECRET_never_kept_4d2c9a"
_JUNK = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = {
    "status": st.sampled_from([*KNOWN_STATUSES, "booting", ""]) | _JUNK,
    "model": _JUNK,
    "input": st.fixed_dictionaries({"hf_token": st.just(HF_TOKEN)}, optional={"config_name": _JUNK}) | _JUNK,
    "output": _JUNK,
    "logs": _JUNK,
    "error": _JUNK,
    "metrics": st.fixed_dictionaries({"predict_time": st.floats() | st.integers() | _JUNK}) | _JUNK,
    "created_at": _JUNK,
    "urls": st.fixed_dictionaries({"get": st.sampled_from([f"{BASE}/trainings/t1", f"{BASE}/predictions/p1"])}) | _JUNK,
}


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=_FIELDS), _JUNK.filter(lambda value: not is_job_id(value)))
def test_a_job_object_whose_id_is_not_a_job_id_is_refused_whole(item, job_id):
    # Never stored under a cut or altered id: the caller skips it (a list) or answers 400 (a webhook).
    with pytest.raises(ValueError, match="job id"):
        observation_from({**item, "id": job_id}, None)


_JOB_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=_FIELDS), _JOB_IDS)
def test_any_job_object_maps_to_a_bounded_storable_observation(item, job_id):
    observation = observation_from({**item, "id": job_id}, None)

    strings = {f.name: getattr(observation, f.name) for f in fields(observation)}
    strings = {name: value for name, value in strings.items() if isinstance(value, str)}
    assert all(_storable(value) for value in strings.values()), strings
    assert not any(HF_TOKEN in value for value in strings.values())
    assert observation.provider == "replicate"
    assert observation.job_id == job_id
    for name in ("model", "created_at"):
        raw = item.get(name)
        assert getattr(observation, name) == (_as_stored(raw) if isinstance(raw, str) else None)

    raw_status = item.get("status")
    if isinstance(raw_status, str) and raw_status in KNOWN_STATUSES:
        assert (observation.status, observation.provider_status) == (KNOWN_STATUSES[raw_status], raw_status)
    elif isinstance(raw_status, str):
        assert observation.status in (None, *KNOWN_STATUSES.values())
    else:
        assert (observation.status, observation.provider_status) == (None, "")

    urls = item.get("urls")
    own_url = urls.get("get") if isinstance(urls, dict) else None
    assert observation.kind == ("training" if isinstance(own_url, str) and "/trainings/" in own_url else None)

    job_input = item.get("input")
    config_name = job_input.get("config_name") if isinstance(job_input, dict) else None
    assert observation.config_name == (_as_stored(config_name) if isinstance(config_name, str) else None)

    metrics = item.get("metrics")
    raw_time = metrics.get("predict_time") if isinstance(metrics, dict) else None
    sane = (
        isinstance(raw_time, (int, float))
        and not isinstance(raw_time, bool)
        and math.isfinite(raw_time)
        and 0 <= raw_time <= 366 * 86_400
    )
    assert observation.predict_time == (float(raw_time) if sane else None)

    assert observation.output_url is None or observation.output_url.startswith(("https://", "http://"))
    assert observation.logs is None or len(observation.logs) <= 65_536
    assert observation.error_message is None or len(observation.error_message) <= 8192
    assert (observation.error_message is None) == (item.get("error") in (None, ""))
