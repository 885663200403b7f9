"""Refreshing active jobs: `sync_active=true` and the scheduled poller."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsync import wiring
from jobsync.domain.errors import StoreUnavailable
from jobsync.domain.job import JobObservation
from jobsync.domain.status import JobStatus
from tests.conftest import LambdaContext, load_event, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_sync_and_listing import stamp

TAIL_KEEPER = "jobsync-test-tail-keeper"


@pytest.fixture(autouse=True)
def tail_keeper(aws_env, monkeypatch):
    """The tail keeper's function name, as the template gives it to the functions that hand off to it."""
    monkeypatch.setenv("JOBSYNC_TAIL_KEEPER_FUNCTION", TAIL_KEEPER)
    wiring.reset()
    return TAIL_KEEPER


def stored(api, job_id):
    return api.call("get_job", path={"job_id": job_id})[1]["job"]


def imported(replicate) -> None:
    """Every job the fake lists, stored as a first sync stores it (without the sync's own walk, which is
    not under test here), 99 to a transaction; the requests it took are forgotten."""
    from jobsync.providers.base import iter_pages
    from jobsync.providers.registry import provider_client
    from jobsync.services.job_updates import create_jobs

    client = provider_client("replicate")
    listed = {}
    for kind in ("training", "prediction"):  # trainings first: a training's kind sticks
        for page in iter_pages(client, kind):
            for observation in page.jobs:
                listed.setdefault(observation.job_id, observation)
    create_jobs(list(listed.values()))
    replicate.requests.clear()


def pending_tails() -> list[str]:
    return wiring.log_store().pending_final()


def test_sync_active_refreshes_an_old_active_job_beyond_the_first_page(api, replicate):
    old = replicate.add(replicate_job("starting", created_at=stamp(0)))
    for n in range(1, 26):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    imported(replicate)
    replicate.update(old["id"], status="processing", started_at=stamp(300))

    status, body = api.call("list_jobs", query={"sync_active": "true", "limit": "5"})

    assert status == 200
    assert stored(api, old["id"])["status"] == "running"
    assert stored(api, old["id"])["started_at"] == stamp(300)
    assert replicate.count("GET", "/predictions") == 3  # three list pages, no per-job GET


def test_the_walk_goes_as_deep_as_the_oldest_active_job_whatever_the_sync_cap(api, replicate, monkeypatch):
    old = replicate.add(replicate_job("processing", created_at=stamp(0)))
    for n in range(1, 50):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    imported(replicate)
    monkeypatch.setenv("JOBSYNC_SYNC_CAP", "10")  # one page a list, for history imports
    wiring.reset()
    replicate.update(old["id"], status="succeeded", completed_at=stamp(400))

    api.call("list_jobs", query={"sync_active": "true"})

    assert replicate.count("GET", "/predictions") == 5  # all five pages: the active job is on the last
    assert stored(api, old["id"])["status"] == "completed"


def test_ended_jobs_answer_at_once_and_their_final_logs_are_kept_in_the_background(api, replicate, handed_off):
    jobs = [replicate.add(replicate_job("processing", created_at=stamp(n))) for n in range(30)]
    imported(replicate)
    ended = sorted(job["id"] for job in jobs[::3])
    for job_id in ended:
        replicate.update(
            job_id, status="succeeded", completed_at=stamp(900), metrics={"predict_time": 5.0}, logs="step 9/9\nsaved"
        )

    status, body = api.call("list_jobs", query={"sync_active": "true"})

    assert status == 200  # the answer holds the listed state, before any final log is fetched
    assert sorted(job["job_id"] for job in body["jobs"] if job["status"] == "completed") == ended
    assert replicate.count("GET") == 3  # three list pages (of 10 here); no job fetched on its own
    assert api.call("metrics")[1]["jobs_by_status"]["completed"] == 10
    assert pending_tails() == ended  # stored as ended with their final tails pending, never without
    assert sorted(id_ for payload in handed_off.to(TAIL_KEEPER) for id_ in payload["job_ids"]) == ended

    replicate.requests.clear()
    assert handed_off.drain(TAIL_KEEPER, "tail_keeper") >= 1  # Lambda runs the tail keeper

    assert pending_tails() == []
    assert replicate.count("GET") == 10  # one fetch per ended job, for its logs
    assert wiring.log_store().kept(ended[0]).text.endswith("saved")


def test_an_ended_job_stays_active_when_its_final_tail_cannot_be_marked_pending(api, replicate, monkeypatch):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    running = replicate.add(replicate_job("starting", created_at=stamp(2)))
    imported(replicate)
    replicate.update(job["id"], status="succeeded", completed_at=stamp(900))
    replicate.update(running["id"], status="processing")
    log_store = wiring.log_store()
    add_pending = log_store.add_pending_final

    def unavailable(job_ids, **_):
        raise StoreUnavailable("the state table did not answer")

    monkeypatch.setattr(log_store, "add_pending_final", unavailable)

    assert api.call("list_jobs", query={"sync_active": "true"})[0] == 200

    assert stored(api, job["id"])["status"] == "running"  # not ended without its tail pending
    assert stored(api, running["id"])["status"] == "running"  # the rest of the batch is written
    monkeypatch.setattr(log_store, "add_pending_final", add_pending)
    api.call("list_jobs", query={"sync_active": "true"})
    assert stored(api, job["id"])["status"] == "completed" and pending_tails() == [job["id"]]


def test_a_refused_hand_off_leaves_the_tail_pending_for_the_next_tick(api, replicate, handed_off):
    from jobsync.services.final_logs import resume_pending

    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    imported(replicate)
    replicate.update(job["id"], status="failed", completed_at=stamp(900), error="boom")
    handed_off.refusing = True

    assert api.call("list_jobs", query={"sync_active": "true"})[0] == 200

    assert stored(api, job["id"])["status"] == "failed" and pending_tails() == [job["id"]]
    handed_off.refusing = False
    assert resume_pending() == 1 and [payload["job_ids"] for payload in handed_off.to(TAIL_KEEPER)] == [[job["id"]]]


def test_a_sync_that_cannot_fetch_an_ended_job_marks_its_tail_pending(api, replicate):
    from jobsync.providers.registry import provider_client
    from jobsync.services.refresh import with_final_logs

    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    imported(replicate)
    listed = replace(JobObservation(job["id"], "replicate", JobStatus.COMPLETED, "succeeded"), kind="prediction")
    replicate.fail_next("GET", f"/predictions/{job['id']}", 404)

    observation = with_final_logs(provider_client("replicate"), wiring.job_store().get(job["id"]), listed)

    assert observation == listed and pending_tails() == [job["id"]]


def test_changed_jobs_are_written_together_across_pages(api, replicate, monkeypatch):
    jobs = [replicate.add(replicate_job("starting", created_at=stamp(n))) for n in range(25)]
    imported(replicate)
    for job in jobs:
        replicate.update(job["id"], status="processing", started_at=stamp(500))
    store = wiring.job_store()
    batches, singles = [], []
    save_together, save = store.save_together, store.save
    monkeypatch.setattr(store, "save_together", lambda changes: batches.append(len(changes)) or save_together(changes))
    monkeypatch.setattr(store, "save", lambda job, previous: singles.append(job.job_id) or save(job, previous))

    api.call("list_jobs", query={"sync_active": "true"})

    assert batches == [25] and singles == []  # three pages of changes: one transaction (of up to 99)
    assert api.call("metrics")[1]["jobs_by_status"]["running"] == 25


def test_a_batch_that_lost_a_race_is_read_again_and_no_update_is_lost(api, replicate, monkeypatch):
    from jobsync.domain.job import JobObservation
    from jobsync.services.job_updates import record_observation

    jobs = [replicate.add(replicate_job("starting", created_at=stamp(n))) for n in range(5)]
    imported(replicate)
    for job in jobs:
        replicate.update(job["id"], status="processing", started_at=stamp(500))
    store = wiring.job_store()
    save_together = store.save_together

    def a_webhook_first(changes):
        if not getattr(a_webhook_first, "ran", False):
            a_webhook_first.ran = True  # between the walk's read and its write, a webhook ends one job
            observation = JobObservation(jobs[0]["id"], "replicate", JobStatus.COMPLETED, "succeeded")
            record_observation(observation)
        return save_together(changes)

    monkeypatch.setattr(store, "save_together", a_webhook_first)

    api.call("list_jobs", query={"sync_active": "true"})

    assert stored(api, jobs[0]["id"])["status"] == "completed"  # the webhook's end stands
    assert {stored(api, job["id"])["status"] for job in jobs[1:]} == {"running"}
    counts = api.call("metrics")[1]["jobs_by_status"]
    assert (counts["completed"], counts["running"], counts["queued"]) == (1, 4, 0)


def test_both_lists_are_read_at_once(api, replicate, monkeypatch):
    """The predictions list's first page is answered only once the trainings list has been asked for:
    read one after the other, the walk would wait for ever (here: fail after the bound)."""
    import threading

    replicate.add(replicate_job("starting", created_at=stamp(1)))
    replicate.add(replicate_job("starting", created_at=stamp(2)), kind="training")
    imported(replicate)
    trainings_asked = threading.Event()
    answer = type(replicate).__call__

    def waiting_for_the_trainings(fake, request):
        if request.url.path.endswith("/trainings"):
            trainings_asked.set()
        elif request.url.path.endswith("/predictions") and not trainings_asked.wait(timeout=60):
            raise AssertionError("the trainings list was not asked for while the predictions list was")
        return answer(fake, request)

    monkeypatch.setattr(type(replicate), "__call__", waiting_for_the_trainings)

    status, _ = api.call("list_jobs", query={"sync_active": "true"})

    assert status == 200 and trainings_asked.is_set()
    assert replicate.count("GET", "/predictions") == 1 and replicate.count("GET", "/trainings") == 1


def test_jobs_the_lists_do_not_show_are_fetched_several_at_once(api, replicate, monkeypatch):
    """Each fetch is answered only once every other one has been asked for: fetched one after the
    other, the first would wait for ever (here: fail after the bound)."""
    import threading

    jobs = [replicate.add(replicate_job("processing", created_at=stamp(n))) for n in range(3)]
    imported(replicate)
    for job in jobs:
        replicate.predictions.remove(job)
        replicate.trainings.append(dict(job, status="succeeded", completed_at=stamp(900), logs="done"))
    all_asked = threading.Barrier(len(jobs), timeout=10)
    answer = type(replicate).__call__

    def together(fake, request):
        if request.url.path.rpartition("/")[2] in {job["id"] for job in jobs}:
            all_asked.wait()  # raises BrokenBarrierError when the fetches do not overlap
        return answer(fake, request)

    monkeypatch.setattr(type(replicate), "__call__", together)

    api.call("list_jobs", query={"sync_active": "true"})

    assert {stored(api, job["id"])["status"] for job in jobs} == {"completed"}


def test_the_next_page_is_asked_for_before_this_one_is_written(api, replicate, monkeypatch):
    jobs = [replicate.add(replicate_job("starting", created_at=stamp(n))) for n in range(20)]
    imported(replicate)
    for job in jobs:
        replicate.update(job["id"], status="processing")
    from jobsync.services import refresh

    # The order in which the walk hands work to its threads, not which thread gets there first: counting the
    # provider's requests at the first write raced the reader's thread against the writer's.
    handed: list[str] = []
    submit, add = refresh.BoundedPool.submit, refresh._Writes.add

    def noting_asks(pool, task, *args, **kwargs):
        if getattr(task, "__name__", "") == "list_page":
            handed.append(f"ask page {sum(step.startswith('ask') for step in handed) + 1}")
        return submit(pool, task, *args, **kwargs)

    def noting_writes(writes, candidates):
        if candidates:
            handed.append("write")
        return add(writes, candidates)

    monkeypatch.setattr(refresh.BoundedPool, "submit", noting_asks)
    monkeypatch.setattr(refresh._Writes, "add", noting_writes)
    monkeypatch.setattr("jobsync.services.refresh.TRANSACTION_JOBS", 10)  # a transaction per page here

    status, _ = api.call("list_jobs", query={"sync_active": "true"})

    assert status == 200
    # page 2 was asked for before page 1's changes went to the writers
    assert handed[:3] == ["ask page 1", "ask page 2", "write"], handed
    assert all(stored(api, job["id"])["status"] == "running" for job in jobs)


def test_a_walk_short_of_time_stops_and_answers(api, replicate):
    old = replicate.add(replicate_job("starting", created_at=stamp(0)))
    for n in range(1, 26):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    imported(replicate)
    replicate.update(old["id"], status="processing")
    api.context = LambdaContext(remaining_ms=6_000)  # 4 s once the reserve is kept: no second page

    status, _ = api.call("list_jobs", query={"sync_active": "true"})

    assert status == 200 and replicate.count("GET") == 1  # one page, and no job fetched on its own
    assert stored(api, old["id"])["status"] == "queued"  # the next refresh gets to it


def test_nothing_changed_means_no_writes(api, replicate, monkeypatch):
    for n in range(5):
        replicate.add(replicate_job("processing", created_at=stamp(n)))
    imported(replicate)
    saves = []
    original = wiring.job_store().save
    monkeypatch.setattr(wiring.job_store(), "save", lambda *a, **k: saves.append(a) or original(*a, **k))
    monkeypatch.setattr(wiring.job_store(), "save_together", lambda changes: saves.append(changes))
    reads = []
    get_many = wiring.job_store().get_many
    monkeypatch.setattr(wiring.job_store(), "get_many", lambda ids: reads.append(list(ids)) or get_many([]))

    api.call("list_jobs", query={"sync_active": "true"})

    assert saves == []
    assert reads == []  # each listed job's digest is the stored one: no job read whole


def test_jobs_stored_before_digests_are_read_whole_and_refreshed(api, replicate):
    import boto3

    jobs = [replicate.add(replicate_job("processing", created_at=stamp(n))) for n in range(3)]
    imported(replicate)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("jobs")
    for job in jobs:
        table.update_item(Key={"job_id": job["id"]}, UpdateExpression="REMOVE observed")
    replicate.update(jobs[0]["id"], status="succeeded", completed_at=stamp(900))

    api.call("list_jobs", query={"sync_active": "true"})

    assert [stored(api, job["id"])["status"] for job in jobs] == ["completed", "running", "running"]


@pytest.mark.parametrize("listed", ["starting", "hibernating"], ids=["stale-list", "unknown-status"])
def test_a_stale_or_unknown_status_leaves_the_job_as_it_is(api, replicate, listed):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    imported(replicate)
    replicate.update(job["id"], status=listed)
    api.call("list_jobs", query={"sync_active": "true"})
    assert stored(api, job["id"])["status"] == "running"


def test_an_active_job_missing_from_the_lists_is_fetched_on_its_own(api, replicate):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    imported(replicate)
    replicate.predictions.remove(job)
    replicate.add(replicate_job("succeeded", created_at=stamp(0)))
    hidden = dict(job, status="succeeded", completed_at=stamp(9), logs="the last line")
    replicate.trainings.append(hidden)  # only reachable by id through /predictions/{id}

    api.call("list_jobs", query={"sync_active": "true"})

    assert stored(api, job["id"])["status"] == "completed"
    assert wiring.log_store().kept(job["id"]).text == "the last line"  # fetched whole: its tail kept at once


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
    imported(replicate)
    replicate.update(job["id"], status="processing")
    replicate.fail_next("GET", "/predictions", *[500] * 5)  # first tick: the provider is down

    result = poll()

    assert result["ticks"] == 2  # every 30 s within the minute the schedule allows
    assert result["updated"] == 1 and stored(api, job["id"])["status"] == "running"


def test_a_failing_background_step_never_stops_the_tick(api, replicate, poller_clock, monkeypatch):
    from jobsync.services import final_logs, polling

    job = replicate.add(replicate_job("starting", created_at=stamp(1)))
    imported(replicate)
    replicate.update(job["id"], status="processing")

    def unavailable():
        raise StoreUnavailable("the state table did not answer")

    monkeypatch.setattr(final_logs, "resume_pending", unavailable)

    report = polling.poll_tick()

    assert report.polled and report.refreshes[0].updated == 1
    assert stored(api, job["id"])["status"] == "running"


def test_poller_is_off_when_a_webhook_is_configured_unless_enabled(api, replicate, monkeypatch, poller_clock):
    monkeypatch.setenv("JOBSYNC_WEBHOOK_URL", "https://jobsync.example.test/api/webhooks/replicate")
    wiring.reset()
    replicate.add(replicate_job("starting"))
    imported(replicate)
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
    imported(replicate)
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
    imported(replicate)
    replicate.predictions.remove(job)
    api.call("list_jobs", query={"sync_active": "true"})
    refresh_clock.now += 20 * 60  # e.g. the poller was off meanwhile
    api.call("list_jobs", query={"sync_active": "true"})
    assert stored(api, job["id"])["status"] == "queued"


def test_an_answer_between_404s_starts_their_run_over(api, replicate, refresh_clock):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    imported(replicate)
    start = refresh_clock.now

    def refresh_at(minute: int) -> str:
        refresh_clock.now = start + minute * 60
        api.call("list_jobs", query={"sync_active": "true"})
        return stored(api, job["id"])["status"]

    replicate.predictions.remove(job)  # 404 from now on
    assert refresh_at(0) == "running"
    replicate.trainings.append(job)  # unlisted, but found by id: the provider knows it after all
    assert refresh_at(5) == "running"
    replicate.trainings.remove(job)
    assert refresh_at(10) == "running"  # a 404 again: a new run starts here, not at minute 0
    assert refresh_at(16) == "running"
    assert refresh_at(25) == "failed"  # fifteen minutes of unbroken 404s


def test_a_job_without_a_creation_time_does_not_make_the_walk_read_every_page(api, replicate):
    from jobsync.domain.job import JobObservation
    from jobsync.domain.status import JobStatus
    from jobsync.services.job_updates import record_observation

    for n in range(50):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    imported(replicate)
    record_observation(JobObservation("no-time", "replicate", JobStatus.RUNNING, "processing"))
    replicate.add(replicate_job("succeeded", job_id="no-time", created_at=stamp(100)), kind="training")
    replicate.requests.clear()

    api.call("list_jobs", query={"sync_active": "true"})

    assert stored(api, "no-time")["status"] == "completed"
    assert replicate.count("GET", "/predictions") == 1  # the one GET for the job itself, no list pages
