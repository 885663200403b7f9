"""Refreshing active jobs: `sync_active=true` and the scheduled poller."""

from __future__ import annotations

import pytest

from jobsync import wiring
from tests.conftest import LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_sync_and_listing import stamp


def stored(api, job_id):
    return api.call("get_job", path={"job_id": job_id})[1]["job"]


def test_sync_active_refreshes_an_old_active_job_beyond_the_first_page(api, replicate):
    old = replicate.add(replicate_job("starting", created_at=stamp(0)))
    for n in range(1, 26):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    api.call("sync_jobs")
    replicate.update(old["id"], status="processing", started_at=stamp(300))
    replicate.requests.clear()

    status, body = api.call("list_jobs", query={"sync_active": "true", "limit": "5"})

    assert status == 200
    assert stored(api, old["id"])["status"] == "running"
    assert stored(api, old["id"])["started_at"] == stamp(300)
    assert replicate.count("GET", "/predictions") == 3  # three list pages, no per-job GET


def test_list_refresh_costs_a_tenth_of_one_get_per_job(api, replicate):
    jobs = [replicate.add(replicate_job("processing", created_at=stamp(n))) for n in range(30)]
    api.call("sync_jobs")
    for job in jobs[::3]:
        replicate.update(job["id"], status="succeeded", completed_at=stamp(900), metrics={"predict_time": 5.0})
    replicate.requests.clear()

    api.call("list_jobs", query={"sync_active": "true"})

    # 3 list pages (of 10 here) + one GET per job that just ended (to keep its logs)
    assert replicate.count("GET") == 3 + 10
    assert api.call("metrics")[1]["jobs_by_status"]["completed"] == 10


def test_nothing_changed_means_no_writes(api, replicate, monkeypatch):
    for n in range(5):
        replicate.add(replicate_job("processing", created_at=stamp(n)))
    api.call("sync_jobs")
    saves = []
    original = wiring.job_store().save
    monkeypatch.setattr(wiring.job_store(), "save", lambda *a, **k: saves.append(a) or original(*a, **k))

    api.call("list_jobs", query={"sync_active": "true"})

    assert saves == []


@pytest.mark.parametrize("listed", ["starting", "hibernating"], ids=["stale-list", "unknown-status"])
def test_a_stale_or_unknown_status_leaves_the_job_as_it_is(api, replicate, listed):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    api.call("sync_jobs")
    replicate.update(job["id"], status=listed)
    api.call("list_jobs", query={"sync_active": "true"})
    assert stored(api, job["id"])["status"] == "running"


def test_an_active_job_missing_from_the_lists_is_fetched_on_its_own(api, replicate):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    api.call("sync_jobs")
    replicate.predictions.remove(job)
    replicate.add(replicate_job("succeeded", created_at=stamp(0)))
    hidden = dict(job, status="succeeded", completed_at=stamp(9))
    replicate.trainings.append(hidden)  # only reachable by id through /predictions/{id}

    api.call("list_jobs", query={"sync_active": "true"})

    assert stored(api, job["id"])["status"] == "completed"


def scheduled_now() -> dict:
    """The sample scheduled event, as EventBridge Scheduler sends it when it fires now (the poller's now:
    the `poller_clock` fixture's when a test uses it)."""
    from datetime import datetime, timezone

    from jobsync.services import polling

    now = datetime.fromtimestamp(polling.time.time(), timezone.utc)
    return {**load_event("poller"), "scheduled_time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def poll(remaining_ms: int = 75_000):  # the poller's timeout in template.yaml
    return load_handler("poller")(scheduled_now(), LambdaContext(remaining_ms=remaining_ms))


def test_poller_refreshes_active_jobs_and_survives_a_failing_provider(api, replicate, poller_clock):
    job = replicate.add(replicate_job("starting", created_at=stamp(1)))
    api.call("sync_jobs")
    replicate.update(job["id"], status="processing")
    replicate.fail_next("GET", "/predictions", *[500] * 5)  # first tick: the provider is down

    result = poll()

    assert result["ticks"] == 2  # every 30 s within the minute the schedule allows
    assert result["updated"] == 1 and stored(api, job["id"])["status"] == "running"


def test_poller_is_off_when_a_webhook_is_configured_unless_enabled(api, replicate, monkeypatch, poller_clock):
    monkeypatch.setenv("JOBSYNC_WEBHOOK_URL", "https://jobsync.example.test/api/webhooks/replicate")
    wiring.reset()
    replicate.add(replicate_job("starting"))
    api.call("sync_jobs")
    replicate.requests.clear()

    assert poll()["polled"] == 0 and replicate.count("GET") == 0
    assert api.call("polling_setting", body={"enabled": True})[1]["is_active"] is True
    assert poll()["polled"] == 2


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.ticks: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_minutes(monkeypatch, interval: int, minutes: int, start: float = 1_000_003.0) -> list[float]:
    """Tick times over `minutes` back-to-back scheduler invocations (the template fires every minute)."""
    from jobsync.services import polling

    monkeypatch.setenv("SIMPLETUNER_JOB_POLL_INTERVAL", str(interval))
    wiring.reset()
    clock = FakeClock(start)
    monkeypatch.setattr(polling, "poll_tick", lambda: clock.ticks.append(clock.now))
    for minute in range(minutes):
        invoked = start + 60 * minute
        clock.now = max(clock.now, invoked)
        polling.run_scheduled_ticks(lambda invoked=invoked: int((invoked + 75 - clock.now) * 1000), clock.sleep, clock)
    return clock.ticks


@pytest.mark.parametrize("interval", [15, 30, 45, 90, 600])
def test_any_poll_interval_holds_across_invocations(api, monkeypatch, interval):
    ticks = run_minutes(monkeypatch, interval, minutes=30)
    gaps = {round(later - earlier, 6) for earlier, later in zip(ticks, ticks[1:], strict=False)}
    assert gaps == {interval}
    assert len(ticks) in (30 * 60 // interval, 30 * 60 // interval + 1)


def test_late_starts_do_not_shift_the_windows(api, monkeypatch):
    """Invocations anchored at their scheduled minute tile time however late each one starts."""
    from jobsync.services import polling

    monkeypatch.setenv("SIMPLETUNER_JOB_POLL_INTERVAL", "30")
    wiring.reset()
    clock = FakeClock(1_800_000_000.0)
    monkeypatch.setattr(polling, "poll_tick", lambda: clock.ticks.append(clock.now))
    for minute, late in enumerate([0.0, 0.9, 0.2, 1.7, 0.0, 2.5, 0.4]):
        scheduled = 1_800_000_000.0 + 60 * minute
        clock.now = max(clock.now, scheduled + late)
        polling.run_scheduled_ticks(lambda: 70_000, clock.sleep, clock, scheduled_at=scheduled)
    due = [1_800_000_000.0 + 30 * number for number in range(14)]
    assert len(clock.ticks) == 14 and all(tick - wanted <= 2.5 for tick, wanted in zip(clock.ticks, due, strict=True))


def test_a_retried_invocation_long_after_its_time_runs_nothing(api, monkeypatch):
    from jobsync.services import polling

    clock = FakeClock(1_800_000_200.0)
    monkeypatch.setattr(polling, "poll_tick", lambda: clock.ticks.append(clock.now))
    polling.run_scheduled_ticks(lambda: 70_000, clock.sleep, clock, scheduled_at=1_800_000_000.0)
    assert clock.ticks == []


def test_the_poller_reads_its_scheduled_time():
    from jobsync.services.polling import scheduled_time

    assert scheduled_time({"scheduled_time": "2026-11-28T12:00:00Z"}) == 1_795_867_200.0
    assert scheduled_time({"scheduled_time": "<aws.scheduler.scheduled-time>"}) is None
    assert scheduled_time({}) is None


def test_no_tick_starts_without_time_to_finish(api, monkeypatch):
    from jobsync.services.polling import run_scheduled_ticks

    monkeypatch.setenv("SIMPLETUNER_JOB_POLL_INTERVAL", "15")
    wiring.reset()
    clock = FakeClock(1_000_005.0)  # a multiple of 15: ticks due at +0, +15, +30, +45
    ends = clock.now + 35  # the Lambda times out 35 s from now: a tick at +30 could not finish
    ticks = run_scheduled_ticks(lambda: int((ends - clock.now) * 1000), clock.sleep, clock)
    assert len(ticks) == 2


@pytest.mark.parametrize(
    ("env", "preference", "expected"),
    [
        ({}, None, True),
        ({"JOBSYNC_WEBHOOK_URL": "https://x.test/hook"}, None, False),
        ({"JOBSYNC_WEBHOOK_URL": "https://x.test/hook", "JOBSYNC_POLLING_ENABLED": "true"}, None, True),
        ({"JOBSYNC_POLLING_ENABLED": "false"}, None, False),
        ({"JOBSYNC_WEBHOOK_URL": "https://x.test/hook"}, True, True),
        ({}, False, False),
    ],
)
def test_polling_status_follows_webhook_config_and_preference(api, monkeypatch, env, preference, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    if preference is not None:
        api.call("polling_setting", body={"enabled": preference})
    answer = api.call("polling_status")[1]
    assert (answer["is_active"], answer["preference"]) == (expected, preference)


def test_polling_setting_null_returns_to_automatic(api):
    api.call("polling_setting", body={"enabled": False})
    answer = api.call("polling_setting", body={"enabled": None})[1]
    assert (answer["is_active"], answer["preference"]) == (True, None)


@pytest.mark.parametrize(
    "body",
    [
        '{"enabled": "yes please"}',
        '{"enabled": "yes"}',
        '{"enabled": 1}',
        '{"enabled": "false"}',
        "{}",
        "not json",
        '{"enabled": true, "x": 1}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["word", "yes", "one", "string-false", "empty", "not-json", "extra-field", "deep-nesting"],
)
def test_polling_setting_rejects_bad_bodies_and_changes_nothing(api, body):
    api.call("polling_setting", body={"enabled": False})
    status, answer = api.call("polling_setting", body=body)
    assert status == 400 and answer["error"] == "invalid_input"
    assert api.call("polling_status")[1]["preference"] is False


def test_yaml_config_sets_polling(api, monkeypatch, tmp_path):
    config = tmp_path / "jobsync.yaml"
    config.write_text("background:\n  job_status_polling:\n    enabled: false\n    interval_seconds: 45\n")
    monkeypatch.setenv("JOBSYNC_CONFIG", str(config))
    wiring.reset()
    assert api.call("service_config")[1]["polling"] == {"enabled": False, "interval_seconds": 45}


def test_env_interval_wins_over_yaml(api, monkeypatch, tmp_path):
    config = tmp_path / "jobsync.yaml"
    config.write_text("background:\n  job_status_polling:\n    interval_seconds: 45\n")
    monkeypatch.setenv("JOBSYNC_CONFIG", str(config))
    monkeypatch.setenv("SIMPLETUNER_JOB_POLL_INTERVAL", "60")
    wiring.reset()
    assert api.call("service_config")[1] == {
        "websocket_url": "wss://ws.example.test/prod",
        "polling": {"enabled": True, "interval_seconds": 60},
        "webhooks": {"configured": False},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def refresh_clock(monkeypatch):
    from jobsync.services import refresh

    clock = Clock()
    monkeypatch.setattr(refresh, "time", clock)
    return clock


def test_an_active_job_the_provider_forgot_is_ended_after_fifteen_minutes_of_404s(api, replicate, refresh_clock):
    forgotten = replicate.add(replicate_job("starting", created_at=stamp(0)), kind="training")
    for n in range(1, 31):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)), kind="training")
    api.call("sync_jobs")
    replicate.trainings.remove(forgotten)  # Replicate answers 404 for it from now on
    replicate.requests.clear()

    for minutes in (0, 5, 5):  # 404s at 0, 5 and 10 minutes
        refresh_clock.now += minutes * 60
        api.call("list_jobs", query={"sync_active": "true"})
        assert stored(api, forgotten["id"])["status"] == "queued"  # one 404 is not the end of a job
    assert replicate.count("GET") == 3 * (3 + 1)  # each time: the whole list (it is older than every job), one GET
    refresh_clock.now += 6 * 60
    api.call("list_jobs", query={"sync_active": "true"})

    job = stored(api, forgotten["id"])
    assert job["status"] == "failed" and "no longer knows this job" in job["error_message"]
    replicate.requests.clear()
    api.call("list_jobs", query={"sync_active": "true"})
    assert replicate.count("GET") == 0  # nothing active is left to ask about


def test_404s_with_a_long_break_between_them_start_over(api, replicate, refresh_clock):
    job = replicate.add(replicate_job("starting", created_at=stamp(0)))
    api.call("sync_jobs")
    replicate.predictions.remove(job)
    api.call("list_jobs", query={"sync_active": "true"})
    refresh_clock.now += 20 * 60  # e.g. the poller was off meanwhile
    api.call("list_jobs", query={"sync_active": "true"})
    assert stored(api, job["id"])["status"] == "queued"


def test_a_job_without_a_creation_time_does_not_make_the_walk_read_every_page(api, replicate):
    from jobsync.domain.job import JobObservation
    from jobsync.domain.status import JobStatus
    from jobsync.services.job_updates import record_observation

    for n in range(50):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    api.call("sync_jobs")
    record_observation(JobObservation("no-time", "replicate", JobStatus.RUNNING, "processing"))
    replicate.add(replicate_job("succeeded", job_id="no-time", created_at=stamp(100)), kind="training")
    replicate.requests.clear()

    api.call("list_jobs", query={"sync_active": "true"})

    assert stored(api, "no-time")["status"] == "completed"
    assert replicate.count("GET", "/predictions") == 1  # the one GET for the job itself, no list pages
