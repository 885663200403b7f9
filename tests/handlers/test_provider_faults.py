"""Refresh, poller and sync meeting provider faults: what can be done is done, the next run does the rest,
and no job ends because of a provider error.

The fake Replicate of tests/fakes answers; a thin layer in front of it makes chosen requests meet a
fault first (429 with and without Retry-After, 5xx, a timeout, a dropped connection, a JSON body cut
short) and serves jobs that the lists no longer show. The client's retries wait on a recorded sleep.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone

import httpx
import pytest
import respx

from tests.conftest import Api, LambdaContext, load_event, load_handler
from tests.fakes.replicate import BASE_URL, FakeReplicate, replicate_job
from tests.handlers.test_sync_and_listing import stamp

RETRIES = 4  # the client's default: a request that meets five faults in a row fails
PAGE = 10  # jobs a list page of the fake holds (Replicate's hold 100)


class FaultyReplicate:
    """FakeReplicate behind a fault schedule, plus jobs that only a GET by id finds (or answers 404 for)."""

    def __init__(self, fake: FakeReplicate) -> None:
        self.fake = fake
        self.schedule: dict[tuple[str, str | None], list[str]] = defaultdict(list)
        self.met: list[tuple[str, str]] = []
        self.unlisted: dict[str, dict | None] = {}  # job id -> the job as a GET shows it, None: 404

    def fail(self, path: str, *kinds: str, cursor: str | None = None) -> None:
        """The next requests for `path` (and page `cursor`) meet these faults, in order."""
        self.schedule[(path, cursor)].extend(kinds)

    def pending(self) -> int:
        return sum(len(kinds) for kinds in self.schedule.values())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        pending = self.schedule.get((path, request.url.params.get("cursor")))
        if pending:
            kind = pending.pop(0)
            self.met.append((path, kind))
            return self._fault(kind, request)
        return self._answer(request, path)

    def _answer(self, request: httpx.Request, path: str) -> httpx.Response:
        job_id = path.rpartition("/")[2]
        if request.method == "GET" and path.count("/") == 2 and job_id in self.unlisted:
            job = self.unlisted[job_id]
            return httpx.Response(200, json=job) if job else httpx.Response(404, json={"detail": "Not found."})
        return self.fake(request)

    def _fault(self, kind: str, request: httpx.Request) -> httpx.Response:
        if kind == "429":
            return httpx.Response(429, json={"detail": "Request was throttled. Your rate limit resets in ~1s."})
        if kind == "429-retry-after":
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "Request was throttled."})
        if kind.isdigit():
            return httpx.Response(int(kind), json={"title": "Error", "detail": "down", "status": int(kind)})
        if kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if kind == "reset":
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        assert kind == "truncated", kind
        # A 200 whose JSON stops half-way: the real answer's, when that is a 200.
        whole = self._answer(request, request.url.path.removeprefix("/v1"))
        body = whole.content if whole.status_code == 200 else json.dumps(replicate_job()).encode()
        return httpx.Response(200, content=body[: len(body) // 2], headers={"content-type": "application/json"})


@pytest.fixture
def provider(tables, aws_env):
    faulty = FaultyReplicate(FakeReplicate(page_size=PAGE))
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=BASE_URL).mock(side_effect=faulty)
        yield faulty


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Every wait (the client's retries, the poller's wait for its second tick), recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr("time.sleep", waited.append)
    return waited


@pytest.fixture
def api(provider) -> Api:
    return Api()


def stored(api: Api, job_id: str) -> dict:
    return api.call("get_job", path={"job_id": job_id})[1]["job"]


def statuses(api: Api) -> dict[str, str]:
    jobs = api.call("list_jobs", query={"limit": "500"})[1]["jobs"]
    return {job["job_id"]: job["status"] for job in jobs}


def done(job: dict, status: str = "succeeded", **fields) -> dict:
    ended = {"completed_at": stamp(2000), "metrics": {"predict_time": 30.0}}
    return {**job, **ended, "status": status, **fields}


class Story:
    """25 running predictions (three list pages) and a few trainings; then the provider moves some of them."""

    def __init__(self, api: Api, provider: FaultyReplicate, handed_off) -> None:
        fake = provider.fake
        self.predictions = [
            fake.add(replicate_job("processing", created_at=stamp(n), started_at=stamp(n))) for n in range(25)
        ]
        # Newest first, ten a page: page 1 holds 24..15, page 2 14..5, page 3 4..0.
        self.on_page_1, self.on_page_2, self.on_page_3 = (self.predictions[n]["id"] for n in (20, 10, 2))
        self.training = fake.add(replicate_job("processing", created_at=stamp(500)), kind="training")["id"]
        self.unlisted = fake.add(replicate_job("processing", created_at=stamp(501)), kind="training")
        self.vanished = fake.add(replicate_job("starting", created_at=stamp(502)), kind="training")
        assert api.call("sync_jobs")[0] == 200
        handed_off.drain("jobsync-test-history-importer", "history_importer")  # the rest of the history
        assert set(statuses(api).values()) == {"running", "queued"} and len(statuses(api)) == 28

        # Then, at the provider:
        fake.update(self.on_page_1, status="succeeded", completed_at=stamp(2000), metrics={"predict_time": 30.0})
        fake.update(self.on_page_2, status="failed", error="CUDA out of memory", completed_at=stamp(2000))
        fake.update(self.on_page_3, status="succeeded", completed_at=stamp(2000), metrics={"predict_time": 30.0})
        fake.update(self.training, status="succeeded", completed_at=stamp(2000), metrics={"predict_time": 30.0})
        # Two trainings leave the lists: one is still found by id (and has ended), one is not (404).
        fake.trainings.remove(self.unlisted)
        fake.trainings.remove(self.vanished)
        provider.unlisted = {self.unlisted["id"]: done(self.unlisted, logs="step 10/10"), self.vanished["id"]: None}

    @property
    def changes(self) -> dict[str, str]:
        return {
            self.on_page_1: "completed",
            self.on_page_2: "failed",
            self.on_page_3: "completed",
            self.training: "completed",
            self.unlisted["id"]: "completed",
        }


def faults_for_the_first_refresh(provider: FaultyReplicate, story: Story) -> None:
    # Retried within the refresh: page 1 of each list. (Jobs that just ended are not fetched by the
    # refresh: their final logs are the tail keeper's, in the background.)
    provider.fail("/predictions", "503", "truncated")
    provider.fail("/trainings", "429-retry-after", "429", "reset")
    # More faults in a row than retries: page 2 of the predictions (so pages 2 and 3 wait for the next
    # refresh), and the unlisted training's own fetch.
    provider.fail("/predictions", "timeout", "reset", "502", "truncated", "500", cursor=str(PAGE))
    provider.fail(f"/trainings/{story.unlisted['id']}", "504", "truncated", "timeout", "503", "reset")


def test_a_refresh_meeting_faults_does_what_it_can_and_the_next_one_the_rest(api, provider, sleeps, handed_off):
    story = Story(api, provider, handed_off)
    before = statuses(api)
    faults_for_the_first_refresh(provider, story)

    assert api.call("list_jobs", query={"sync_active": "true", "limit": "1"})[0] == 200

    assert provider.pending() == 0
    after_first = statuses(api)
    assert "failed" not in after_first.values()  # the provider's own "failed" was on page 2, not read yet
    changed = {job_id: status for job_id, status in after_first.items() if status != before[job_id]}
    assert changed == {story.on_page_1: "completed", story.training: "completed"}
    assert len(sleeps) >= 2 * RETRIES

    assert api.call("list_jobs", query={"sync_active": "true", "limit": "1"})[0] == 200

    after_second = statuses(api)
    changed = {job_id: status for job_id, status in after_second.items() if status != before[job_id]}
    assert changed == story.changes
    assert stored(api, story.on_page_2)["error_message"] == "CUDA out of memory"
    assert after_second[story.vanished["id"]] == "queued"  # one 404 is not the end of a job


def test_a_poller_tick_meeting_faults_leaves_the_rest_to_the_next_tick(api, provider, sleeps, poller_clock, handed_off):
    story = Story(api, provider, handed_off)
    before = statuses(api)
    faults_for_the_first_refresh(provider, story)
    event = load_event("poller")
    now = datetime.fromtimestamp(poller_clock.time(), timezone.utc)
    event["scheduled_time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    result = load_handler("poller")(event, LambdaContext(remaining_ms=75_000))

    assert result["ticks"] == 2  # every 30 s of the minute: the first meets the faults, the second does the rest
    assert provider.pending() == 0
    assert result["updated"] == len(story.changes)
    after = statuses(api)
    assert {job_id: status for job_id, status in after.items() if status != before[job_id]} == story.changes


def test_a_history_import_meeting_faults_keeps_what_it_stored_and_goes_on_from_there(api, provider, sleeps, handed_off):
    importer = ("jobsync-test-history-importer", "history_importer")
    jobs = [provider.fake.add(replicate_job("succeeded", created_at=stamp(n))) for n in range(35)]  # 4 pages
    running = provider.fake.add(replicate_job("processing", created_at=stamp(400)), kind="training")
    provider.fail("/trainings", "reset", "503")  # retried
    provider.fail("/predictions", *["truncated", "timeout", "502", "429", "reset"], cursor=str(2 * PAGE))  # page 3

    status, body = api.call("sync_jobs")  # pages 1 and 2 itself; page 3 in the background
    handed_off.drain(*importer)

    assert status == 200 and body["history_complete"] is False
    first = statuses(api)
    assert len(first) == 1 + 2 * PAGE and first[running["id"]] == "running"  # the training and pages 1 and 2
    assert set(first.values()) == {"completed", "running"}

    provider.fail("/predictions", *["503"] * (RETRIES + 1), cursor=str(2 * PAGE))  # the saved page fails again
    assert api.call("sync_jobs")[1]["history_complete"] is False  # the paused import is started again...
    handed_off.drain(*importer)
    assert len(statuses(api)) == 1 + 2 * PAGE  # ...and pauses again: a passing fault keeps the position
    before = provider.fake.count("GET", "/predictions")

    api.call("sync_jobs")
    handed_off.drain(*importer)

    assert api.call("sync_jobs")[1]["history_complete"] is True
    # The top page (the third sync), pages 3 and 4 (its import), the top page (the fourth sync).
    assert provider.fake.count("GET", "/predictions") - before == 4
    assert statuses(api) == {**{job["id"]: "completed" for job in jobs}, running["id"]: "running"}
    assert api.call("metrics")[1]["job_count"] == 36


class WallClock:
    """Stands in for the refresh module's `time`: time() moves only when the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_faults_never_count_towards_the_fifteen_minutes_of_404s(api, provider, sleeps, monkeypatch):
    from jobsync.services import refresh

    clock = WallClock(1_800_000_000.0)
    monkeypatch.setattr(refresh, "time", clock)
    job = provider.fake.add(replicate_job("processing", created_at=stamp(1)), kind="training")
    api.call("sync_jobs")
    provider.fake.trainings.remove(job)
    provider.unlisted[job["id"]] = None  # Replicate answers 404 for it, when it answers
    path = f"/trainings/{job['id']}"

    def tick(minute: float, *faults: str) -> str:
        clock.now = 1_800_000_000.0 + minute * 60
        provider.fail(path, *faults)
        api.call("list_jobs", query={"sync_active": "true", "limit": "1"})
        assert provider.pending() == 0
        return stored(api, job["id"])["status"]

    assert tick(0) == "running"  # a 404: the first of a run
    kinds = ["500", "502", "503", "504", "timeout", "reset", "truncated", "429", "429-retry-after"]
    for number, kind in enumerate(kinds):  # twenty minutes in which every fetch, retries included, meets a fault
        assert tick(2 + 2 * number, *[kind] * (RETRIES + 1)) == "running", kind
    # The last 404 was twenty minutes ago: a new one starts a new run, which needs its own fifteen minutes.
    for minute in (21, 26, 31, 35):
        assert tick(minute) == "running"
    assert tick(36) == "failed"
    assert "no longer knows this job (404)" in stored(api, job["id"])["error_message"]


def test_a_provider_that_fails_as_a_whole_stops_the_fetches_of_a_refresh(api, provider, sleeps):
    from jobsync.services.refresh import FETCH_WORKERS

    gone = [provider.fake.add(replicate_job("processing", created_at=stamp(n)), kind="training") for n in range(20)]
    api.call("sync_jobs")
    for job in gone:
        provider.fake.trainings.remove(job)
        provider.unlisted[job["id"]] = done(job)
        provider.fail(f"/trainings/{job['id']}", *["503"] * (RETRIES + 1))

    api.call("list_jobs", query={"sync_active": "true", "limit": "1"})

    fetched = {path for path, _ in provider.met}
    # The first fetch to meet the outage stops the rest: only those already in flight (one per worker) ran.
    assert len(fetched) <= FETCH_WORKERS
    assert set(statuses(api).values()) == {"running"}
    provider.schedule.clear()
    api.call("list_jobs", query={"sync_active": "true", "limit": "1"})
    assert set(statuses(api).values()) == {"completed"}


def test_the_fault_layer_cuts_a_real_answer_short(provider):
    provider.fake.add(replicate_job("processing"))
    provider.fail("/predictions", "truncated")
    request = httpx.Request("GET", f"{BASE_URL}/predictions", headers={"authorization": "Bearer r8_test_token"})
    cut = provider(request)
    whole = provider(request)
    assert cut.status_code == 200 and whole.content.startswith(cut.content) and len(cut.content) < len(whole.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
