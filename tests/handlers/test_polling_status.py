"""`GET /api/cloud/polling/status` tells whether polling is failing: the poller records each tick's outcome."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest

from jobsync.store import dynamo
from tests.fakes.replicate import replicate_job
from tests.handlers.test_refresh_and_poller import poll
from tests.handlers.test_sync_and_listing import stamp

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


# 2026-11-30T08:00:07Z: the poller's clock (the `poller_clock` fixture) starts here and moves only when the
# poller sleeps, so each tick happens, and is recorded, exactly at its due time.
START = 1_796_025_607.0
FIRST_TICK, SECOND_TICK = START + 23, START + 53  # the multiples of the 30 s interval within the minute


@pytest.fixture
def no_sleep(poller_clock):
    """The poller on a fixed clock that its sleeps move: no tick waits for, or depends on, the wall clock."""
    poller_clock.now = START
    return poller_clock


@pytest.fixture
def dynamodb_calls() -> Counter:
    """Every DynamoDB operation this thread makes from now on, by name."""
    calls: Counter = Counter()
    dynamo.client().meta.events.register("before-call.dynamodb", lambda model, **kwargs: calls.update([model.name]))
    return calls


def writes(calls: Counter) -> int:
    return sum(n for name, n in calls.items() if name in _WRITES)


def last_tick(api) -> dict:
    status, body = api.call("polling_status")
    assert status == 200
    return body["last_tick"]


def stamp_of(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_time(tick: dict) -> float:
    assert tick["at"].endswith("Z"), tick
    return datetime.strptime(tick["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_before_the_first_tick_the_status_has_no_tick(api):
    assert api.call("polling_status") == (
        200,
        {"is_active": True, "preference": None, "last_tick": {"at": None, "error": None}},
    )


def test_a_failing_tick_is_reported_until_a_tick_goes_well(api, replicate, no_sleep):
    replicate.add(replicate_job("processing", created_at=stamp(1)))
    api.call("sync_jobs")
    replicate.token = "r8_rotated"  # Replicate refuses the token from now on

    assert poll()["failed"] == 2

    failing = last_tick(api)
    assert failing["error"].startswith("replicate: ")
    assert "You did not pass a valid authentication token" in failing["error"]
    assert "r8_test_token" not in failing["error"]
    assert tick_time(failing) == SECOND_TICK  # each failing tick is recorded: the last one is the second
    # The setting's answer is the same shape: the page keeps showing the failure after a change.
    status, answer = api.call("polling_setting", body={"enabled": True})
    assert status == 200 and answer["last_tick"] == failing

    replicate.token = "r8_test_token"  # fixed
    no_sleep.now = START + 60  # the scheduler's next invocation
    assert poll()["failed"] == 0

    healthy = last_tick(api)
    # The first healthy tick ends the failure and is recorded; the second, healthy after healthy, is not.
    assert healthy == {"at": stamp_of(FIRST_TICK + 60), "error": None}


def test_an_idle_healthy_tick_writes_nothing(api, replicate, no_sleep, dynamodb_calls):
    replicate.add(replicate_job("processing", created_at=stamp(1)))
    api.call("sync_jobs")
    poll()  # the first tick ever is recorded
    first = last_tick(api)
    assert first["error"] is None and first["at"] is not None
    dynamodb_calls.clear()

    assert poll() == {"ticks": 2, "polled": 2, "updated": 0, "failed": 0}

    assert writes(dynamodb_calls) == 0, dynamodb_calls
    assert last_tick(api) == first


def test_each_failing_tick_writes_once(api, replicate, no_sleep, dynamodb_calls):
    replicate.add(replicate_job("processing", created_at=stamp(1)))
    api.call("sync_jobs")
    replicate.fail_next("GET", "/predictions", *[503] * 20)
    dynamodb_calls.clear()

    assert poll()["failed"] == 2

    assert dynamodb_calls["PutItem"] == 2 and writes(dynamodb_calls) == 2, dynamodb_calls
    assert "HTTP 503" in last_tick(api)["error"]


def test_many_failures_are_summed_up_in_one_bounded_line(api, replicate, no_sleep, monkeypatch):
    from jobsync.services import polling
    from jobsync.services.refresh import RefreshReport

    report = RefreshReport("replicate", errors=["x" * 2000, "second", "third"])
    monkeypatch.setattr(polling, "refresh_active_jobs", lambda provider: report)

    assert polling.poll_tick().error == last_tick(api)["error"]
    error = last_tick(api)["error"]
    assert len(error) == 500 and error.endswith("… (and 2 more)") and error.startswith("replicate: xxx")


def test_a_tick_that_fails_unexpectedly_names_only_the_errors_type(api, monkeypatch):
    from jobsync.services import polling

    def broken(provider):
        raise ValueError("internal detail that stays in the logs")

    monkeypatch.setattr(polling, "refresh_active_jobs", broken)

    assert polling.poll_tick().error == "replicate: ValueError"
    assert last_tick(api)["error"] == "replicate: ValueError"


def test_no_tick_is_recorded_while_polling_is_off(api, replicate, no_sleep):
    api.call("polling_setting", body={"enabled": False})
    assert poll()["polled"] == 0
    assert api.call("polling_status")[1] == {
        "is_active": False,
        "preference": False,
        "last_tick": {"at": None, "error": None},
    }


def test_the_openapi_document_describes_the_last_tick(api):
    document = api.call("openapi")[1]
    schemas = document["components"]["schemas"]
    status = schemas["PollingStatusOut"]
    assert set(status["required"]) == {"is_active", "preference", "last_tick"}
    assert status["properties"]["last_tick"] == {"$ref": "#/components/schemas/LastTickOut"}
    assert set(schemas["LastTickOut"]["properties"]) == {"at", "error"}
