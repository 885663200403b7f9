"""The one definition of a job id and a webhook id, and every form of it agreeing with the others.

The domain's check, the API's pydantic type and the JSON Schema in the OpenAPI document are three
spellings of one rule: a property test holds them to the same answer for any string.
"""

from __future__ import annotations

import warnings

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.exceptions import StarletteDeprecationWarning

from jobsync.api.models import JobPath
from jobsync.domain import identifiers
from local.replicate_simulator import FaultPlan, SimulatedReplicate, create_app

VALID = ["a", "Z", "0", "_", "-", "rrr4z55ocneg2rdh4bh4q9c6pc", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "x" * 128]
INVALID = [
    "",
    "x" * 129,
    "x" * 1_000,
    "a/b",
    "..",
    "a.b",
    "a#b",
    "a b",
    " a",
    "a\n",
    "a\x00",
    "jöb",
    "٣",  # a digit of another script
    "ａ",  # fullwidth
    "%2F",
]

_ID_TEXT = st.text(st.sampled_from("aZ09_-./# \n\x00é٣"), max_size=140) | st.text(max_size=200)


@pytest.mark.parametrize("value", VALID)
def test_ids_within_the_definition(value):
    assert identifiers.is_job_id(value) and identifiers.is_webhook_id(value)
    assert identifiers.job_id(value) == value == identifiers.webhook_id(value)


@pytest.mark.parametrize("value", [*INVALID, None, 7, b"abc", ["a"]])
def test_anything_else_is_refused_with_a_short_reason(value):
    assert not identifiers.is_job_id(value) and not identifiers.is_webhook_id(value)
    with pytest.raises(identifiers.InvalidIdentifier, match="a job id") as refused:
        identifiers.job_id(value)
    with pytest.raises(ValueError, match="a webhook id"):
        identifiers.webhook_id(value)
    assert len(str(refused.value)) < 200  # a megabyte of id is never echoed back


def test_the_bound_keeps_every_key_far_inside_dynamodbs_limits():
    # Partition keys hold at most 2048 bytes, sort keys 1024; the longest key built from an id is
    # `webhook#<id>` (or `<timestamp>#<id>` in created_sort), all ASCII.
    longest = "x" * identifiers.MAX_ID_LENGTH
    assert len(f"webhook#{longest}".encode()) < 1024
    assert len(f"2026-11-01T10:00:00.000000Z#{longest}".encode()) < 1024


_SCHEMA = jsonschema_rs.validator_for(identifiers.json_schema())  # compiled once, not once an example


@hypothesis_settings(max_examples=500, deadline=None)
@given(_ID_TEXT)
def test_the_domain_check_the_api_type_and_the_json_schema_agree(value):
    expected = identifiers.is_job_id(value)
    try:
        JobPath.model_validate({"job_id": value})
        api = True
    except ValidationError:
        api = False
    # JSON Schema patterns are ECMA regexes (`$` is the very end), as jsonschema_rs reads them; Python's
    # `re`, which the jsonschema package uses, would also let `$` match before a final newline.
    schema = _SCHEMA.is_valid(value)
    assert api is expected and schema is expected


def test_the_api_types_schema_is_the_definition():
    schema = JobPath.model_json_schema()["properties"]["job_id"]
    assert {key: value for key, value in schema.items() if key != "title"} == identifiers.json_schema()


ANCHOR = 1_800_000_000.0
DAYS = 86_400.0


def test_every_id_the_simulator_issues_is_within_the_definition():
    sim = SimulatedReplicate(anchor=ANCHOR, clock=lambda: ANCHOR, faults=FaultPlan())
    jobs = sim.jobs(now=ANCHOR + 30 * DAYS)
    assert len(jobs) > 200 and all(identifiers.is_job_id(job["id"]) for job in jobs)
    events = sim.due_webhooks(ANCHOR - 30 * DAYS, ANCHOR + 30 * DAYS)
    assert events and all(identifiers.is_webhook_id(event.webhook_id) for event in events)


@pytest.mark.parametrize("bad", ["x" * 129, "a.b", "..", "a%20b", "j%C3%B6b"])
def test_the_simulator_answers_an_id_it_could_not_have_issued_like_any_unknown_one(bad):
    sim = SimulatedReplicate(anchor=ANCHOR, clock=lambda: ANCHOR, token="r8_t", faults=FaultPlan())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

        client = TestClient(create_app(sim), headers={"Authorization": "Bearer r8_t"})
    known = sim.jobs(now=ANCHOR)[0]["id"]
    assert client.get(f"/v1/predictions/{known}").status_code == 200
    for path in (f"/v1/predictions/{bad}", f"/v1/trainings/{bad}", f"/v1/predictions/{bad}/cancel"):
        answer = client.post(path) if path.endswith("/cancel") else client.get(path)
        assert answer.status_code == 404 and answer.json()["status"] == 404, path
