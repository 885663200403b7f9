"""The local stack's Replicate simulator: API shape, the scripted story, faults, webhooks and the package's parts.

A manual clock drives everything: no test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from datetime import datetime

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from local.replicate_simulator import (
    FAULT_KINDS,
    PAGE_SIZE,
    TERMINAL_STATUSES,
    Fault,
    FaultPlan,
    SimulatedReplicate,
    WebhookEvent,
    create_app,
    deliver_due,
    deliver_webhook,
)

ANCHOR = 1_725_945_035.0  # 2024-09-10T05:10:35Z
TOKEN = "r8_test_token"
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.(\d{6}|\d{9})Z")
STEP = re.compile(r"Step (\d+)/(\d+)")
BAR = re.compile(r"\d+%\|[^|]*\| (\d+)/(\d+) \[")
RANK = {"starting": 0, "processing": 1, **{status: 2 for status in TERMINAL_STATUSES}}


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> ManualClock:
        self.now = ANCHOR + offset
        return self


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ANCHOR + 60)


@pytest.fixture
def sim(clock: ManualClock) -> SimulatedReplicate:
    return SimulatedReplicate(anchor=ANCHOR, clock=clock, token=TOKEN, faults=FaultPlan())


@pytest.fixture
def client(sim: SimulatedReplicate) -> TestClient:
    return TestClient(create_app(sim), headers={"Authorization": f"Bearer {TOKEN}"})


def _all_pages(client: TestClient, url: str) -> list[list[dict]]:
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["results"])
        url = body["next"]
        if url:
            assert url.startswith("http://testserver/v1/"), url
            assert "cursor=" in url
    return pages


def _count(logs: str) -> int:
    """The newest step count in a log (SimpleTuner `Step N/M` or a tqdm bar's `N/M`)."""
    counts = [int(m.group(1)) for m in STEP.finditer(logs)] + [int(m.group(1)) for m in BAR.finditer(logs)]
    return max(counts, default=-1)


# --------------------------------------------------------------------------- auth and errors


def test_every_route_requires_the_token(sim: SimulatedReplicate) -> None:
    anonymous = TestClient(create_app(sim))
    expected = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
    job_id = sim.scenario_ids["flux-long"]
    for method, path in [
        ("GET", "/v1/account"),
        ("GET", "/v1/predictions"),
        ("GET", "/v1/trainings"),
        ("GET", f"/v1/predictions/{job_id}"),
        ("POST", f"/v1/trainings/{job_id}/cancel"),
        ("GET", "/v1/webhooks/default/secret"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = anonymous.request(method, path, headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json() == expected
    assert sim.get(job_id)["status"] == "processing"  # the refused cancel did nothing
    for scheme in ("Bearer", "Token", "bearer"):
        assert anonymous.get("/v1/account", headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200


def test_account_and_webhook_secret(client: TestClient) -> None:
    assert client.get("/v1/account").json() == {
        "type": "user",
        "username": "jobsync-simulator",
        "name": "jobsync simulator",
        "github_url": None,
    }
    key = client.get("/v1/webhooks/default/secret").json()["key"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", key)  # 24 bytes
    assert key == SimulatedReplicate(anchor=ANCHOR, token=TOKEN).webhook_secret  # seeded, stable
    assert SimulatedReplicate(anchor=ANCHOR, webhook_secret="whsec_abc=").webhook_secret == "whsec_abc="


def test_unknown_ids_answer_404_problems(client: TestClient, sim: SimulatedReplicate) -> None:
    expected = {"title": "Not found", "detail": "Not found.", "status": 404}
    prediction_id = next(job["id"] for job in sim.jobs() if not job["urls"]["get"].count("/trainings/"))
    not_yet_created = sim.scenario_ids["sdxl-new"]  # created at anchor + ~75 s
    for method, path in [
        ("GET", "/v1/predictions/nosuchid"),
        ("GET", "/v1/trainings/nosuchid"),
        ("POST", "/v1/predictions/nosuchid/cancel"),
        ("GET", f"/v1/trainings/{prediction_id}"),  # a plain prediction is no training
        ("GET", f"/v1/predictions/{not_yet_created}"),
        ("GET", "/v1/nothing-here"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json() == expected


# --------------------------------------------------------------------------- listing


def test_pagination_covers_every_job_exactly_once(client: TestClient, sim: SimulatedReplicate) -> None:
    pages = _all_pages(client, "/v1/predictions")
    assert len(pages) >= 3
    assert [len(page) for page in pages[:-1]] == [PAGE_SIZE] * (len(pages) - 1)
    ids = [job["id"] for page in pages for job in page]
    assert len(ids) == len(set(ids)) == len(sim.jobs()) >= 230
    created = [datetime.fromisoformat(job["created_at"][:26] + "+00:00") for page in pages for job in page]
    assert created == sorted(created, reverse=True)  # newest first


def test_previous_link_leads_back(client: TestClient) -> None:
    first = client.get("/v1/predictions").json()
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert second["previous"].startswith("http://testserver/v1/predictions?cursor=")
    back = client.get(second["previous"]).json()
    assert [job["id"] for job in back["results"]] == [job["id"] for job in first["results"]]


def test_trainings_are_in_both_lists(client: TestClient, sim: SimulatedReplicate) -> None:
    trainings = [job for page in _all_pages(client, "/v1/trainings") for job in page]
    predictions = {job["id"] for page in _all_pages(client, "/v1/predictions") for job in page}
    visible = {key: job_id for key, job_id in sim.scenario_ids.items() if key != "sdxl-new"}
    assert {job["id"] for job in trainings} == set(visible.values())
    assert set(visible.values()) <= predictions
    for job in trainings:
        assert job["urls"]["get"] == f"http://testserver/v1/trainings/{job['id']}"
        assert client.get(f"/v1/predictions/{job['id']}").json()["status"] == job["status"]


def test_list_items_have_no_logs_but_a_single_get_does(client: TestClient, sim: SimulatedReplicate) -> None:
    for job in client.get("/v1/predictions").json()["results"]:
        assert "logs" not in job
    job_id = sim.scenario_ids["flux-long"]
    one = client.get(f"/v1/trainings/{job_id}").json()
    assert one["status"] == "processing"
    assert "flux_train_replicate:" in one["logs"]


def test_created_after_and_before_filter_predictions(client: TestClient, sim: SimulatedReplicate) -> None:
    everything = sim.jobs()
    pivot = everything[50]["created_at"]
    after = [job for page in _all_pages(client, f"/v1/predictions?created_after={pivot}") for job in page]
    before = [job for page in _all_pages(client, f"/v1/predictions?created_before={pivot}") for job in page]
    assert [job["id"] for job in after] == [job["id"] for job in everything[:51]]  # inclusive
    assert [job["id"] for job in before] == [job["id"] for job in everything[51:]]  # exclusive
    both = client.get("/v1/predictions", params={"created_after": "2024-09-09T00:00:00Z", "created_before": pivot})
    assert all("2024-09-09" <= job["created_at"] < pivot for job in both.json()["results"])
    assert client.get("/v1/predictions?created_after=yesterday").status_code == 400
    assert client.get("/v1/predictions?cursor=%21%21garbage").status_code == 400


def test_next_keeps_the_filters(client: TestClient) -> None:
    body = client.get("/v1/predictions", params={"created_before": "2024-09-10T05:00:00Z"}).json()
    assert "created_before=2024-09-10T05%3A00%3A00Z" in body["next"]


# --------------------------------------------------------------------------- the story


def test_a_running_job_shows_moving_progress(client: TestClient, sim: SimulatedReplicate, clock: ManualClock) -> None:
    running = [job["id"] for job in sim.jobs("training") if job["status"] == "processing"]
    assert running
    at_60 = {job_id: client.get(f"/v1/predictions/{job_id}").json()["logs"] for job_id in running}
    clock.at(120)
    at_120 = {job_id: client.get(f"/v1/predictions/{job_id}").json()["logs"] for job_id in running}
    moved = [job_id for job_id in running if _count(at_120[job_id]) > _count(at_60[job_id]) >= 0]
    assert moved
    assert any("\rflux_train_replicate:" in logs for logs in at_60.values())  # a tqdm bar rewritten in place
    assert any(STEP.search(logs) for logs in at_60.values())
    for job_id in running:
        assert at_120[job_id].startswith(at_60[job_id])  # logs only grow


def test_the_projects_progress_parser_reads_the_logs(sim: SimulatedReplicate) -> None:
    from jobsync.domain.progress import parse_progress

    flux, sdxl = sim.scenario_ids["flux-long"], sim.scenario_ids["sdxl-queued"]
    assert parse_progress(sim.get(sdxl, now=ANCHOR + 40)["logs"]).stage == "Preprocessing"
    assert parse_progress(sim.get(sdxl, now=ANCHOR + 60)["logs"]).stage == "Warmup"
    early, later = (parse_progress(sim.get(flux, now=ANCHOR + t)["logs"]) for t in (60, 120))
    assert early.stage == later.stage == "Training"
    assert 0 < early.progress < later.progress < 100
    stages = {parse_progress(sim.get(flux, now=ANCHOR + t)["logs"]).stage for t in range(0, 1200, 3)}
    assert {"Training", "Validation", "Saving checkpoint"} <= stages


def test_one_job_keeps_running_for_five_minutes(sim: SimulatedReplicate) -> None:
    counts = []
    for offset in range(0, 301, 30):
        job = sim.get(sim.scenario_ids["flux-long"], now=ANCHOR + offset)
        assert job["status"] == "processing"
        counts.append(_count(job["logs"]))
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0


def test_statuses_only_move_forward(sim: SimulatedReplicate) -> None:
    seen: dict[str, dict] = {}
    for offset in range(-120, 7201, 20):
        for job in sim.jobs(now=ANCHOR + offset):
            before = seen.get(job["id"])
            if before is not None:
                assert RANK[job["status"]] >= RANK[before["status"]], (job["id"], offset)
                if before["status"] in TERMINAL_STATUSES:
                    assert job["status"] == before["status"]
                    assert job["completed_at"] == before["completed_at"]
            seen[job["id"]] = job
    assert {job["status"] for job in seen.values()} >= {"succeeded", "failed", "canceled", "aborted"}


def test_the_first_five_minutes_hold_every_kind_of_change(sim: SimulatedReplicate) -> None:
    changes: set[tuple[str, str]] = set()
    before = {job["id"]: job["status"] for job in sim.jobs("training", now=ANCHOR)}
    assert "processing" in before.values()
    for offset in range(2, 301, 2):
        now = {job["id"]: job["status"] for job in sim.jobs("training", now=ANCHOR + offset)}
        changes |= {(before[i], status) for i, status in now.items() if i in before and before[i] != status}
        before = now
    assert {("starting", "processing"), ("processing", "succeeded"), ("processing", "failed")} <= changes
    assert ("processing", "canceled") in changes
    failed = sim.get(sim.scenario_ids["sdxl-oom"], now=ANCHOR + 300)
    assert "CUDA out of memory" in failed["error"] and "CUDA out of memory" in failed["logs"]
    done = sim.get(sim.scenario_ids["flux-finishing"], now=ANCHOR + 120)
    assert done["status"] == "succeeded"
    assert done["output"]["weights"].startswith("https://replicate.delivery/")
    assert done["output"]["weights"].endswith("/trained_model.tar")
    assert done["metrics"]["predict_time"] > 0 and done["metrics"]["total_time"] >= done["metrics"]["predict_time"]


def test_timestamps_are_stable_and_come_from_the_anchor(client: TestClient, sim: SimulatedReplicate) -> None:
    first, second = client.get("/v1/predictions").json(), client.get("/v1/predictions").json()
    assert first == second
    stamps = [job[field] for job in first["results"] for field in ("created_at", "started_at", "completed_at")]
    stamps = [stamp for stamp in stamps if stamp is not None]
    assert all(ISO.fullmatch(stamp) for stamp in stamps)
    assert any(len(stamp) == 30 for stamp in stamps) and any(len(stamp) == 27 for stamp in stamps)
    # A restart with the same anchor tells the same story.
    later = SimulatedReplicate(anchor=ANCHOR, clock=lambda: ANCHOR + 60, token=TOKEN)
    job_id = sim.scenario_ids["flux-long"]
    assert later.get(job_id) == sim.get(job_id)
    assert re.fullmatch(r"[a-z0-9]{26}", job_id)


def test_speed_scales_the_scenario(sim: SimulatedReplicate) -> None:
    fast = SimulatedReplicate(anchor=ANCHOR, speed=4.0, token=TOKEN)
    job_id = sim.scenario_ids["flux-finishing"]
    slow_end = sim.get(job_id, now=ANCHOR + 3000)["metrics"]["predict_time"]
    fast_end = fast.get(job_id, now=ANCHOR + 3000)["metrics"]["predict_time"]
    assert fast_end == pytest.approx(slow_end / 4, rel=1e-3)
    assert fast.get(job_id, now=ANCHOR + 30)["status"] == "succeeded"  # ~+96 s at speed 1, ~+24 s at 4x


def test_data_is_removed_an_hour_after_completion(sim: SimulatedReplicate) -> None:
    history = [job for job in sim.jobs() if "/predictions/" in job["urls"]["get"]]
    old = [job for job in history if job["data_removed"]]
    assert old and all(sim.get(job["id"])["logs"] == "" for job in old)
    assert any(not job["data_removed"] for job in history)
    earlier = sim.scenario_ids["flux-earlier"]
    assert sim.get(earlier)["logs"] and not sim.get(earlier)["data_removed"]
    gone = sim.get(earlier, now=ANCHOR + 7200)
    assert gone["data_removed"] and gone["logs"] == "" and gone["output"]["weights"]


# --------------------------------------------------------------------------- cancel


def test_cancel_works_and_sticks(client: TestClient, sim: SimulatedReplicate, clock: ManualClock) -> None:
    job_id = sim.scenario_ids["flux-long"]
    logs_then = client.get(f"/v1/trainings/{job_id}").json()["logs"]
    canceled = client.post(f"/v1/trainings/{job_id}/cancel").json()
    assert canceled["status"] == "canceled"
    assert canceled["completed_at"].startswith("2024-09-10T05:11:35.")  # anchor + 60 s
    assert canceled["output"] is None
    clock.at(3000)
    later = client.get(f"/v1/predictions/{job_id}").json()
    assert later["status"] == "canceled"
    assert later["completed_at"] == canceled["completed_at"]
    assert later["logs"] == logs_then
    assert later["metrics"]["predict_time"] == pytest.approx(60 + 76.6, abs=1.5)
    # Cancelling again, or cancelling a finished job, changes nothing.
    assert client.post(f"/v1/predictions/{job_id}/cancel").json() == {**later, "logs": logs_then}
    finished = sim.scenario_ids["flux-finishing"]
    assert client.post(f"/v1/predictions/{finished}/cancel").json()["status"] == "succeeded"


def test_a_canceled_job_stops_logging_and_its_last_webhook_says_canceled(
    client: TestClient, sim: SimulatedReplicate, clock: ManualClock
) -> None:
    job_id = sim.scenario_ids["sdxl-queued"]  # processing from ~+32, succeeds at ~+610 unless canceled
    clock.at(200)
    canceled = client.post(f"/v1/trainings/{job_id}/cancel").json()
    assert canceled["status"] == "canceled" and STEP.search(canceled["logs"])
    for offset in (201, 400, 700):
        clock.at(offset)
        assert client.get(f"/v1/trainings/{job_id}").json()["logs"] == canceled["logs"]
    events = [event for event in sim.due_webhooks(ANCHOR + 150, ANCHOR + 700) if event.job_id == job_id]
    assert [event.event for event in events[-2:]] == ["logs", "completed"]
    assert all(event.at <= ANCHOR + 200 for event in events)
    completed = json.loads(sim.webhook_request(events[-1], timestamp=1)[1])
    assert completed["status"] == "canceled" and completed["logs"] == canceled["logs"]


def test_cancellations_kept_in_a_file_survive_a_restart(tmp_path) -> None:
    kept = tmp_path / "cancellations.jsonl"
    first = SimulatedReplicate(anchor=ANCHOR, token=TOKEN, faults=FaultPlan(), cancellations_file=kept)
    job_id = first.scenario_ids["flux-long"]
    canceled = first.cancel(job_id, "training", now=ANCHOR + 60)
    first.cancel(job_id, "training", now=ANCHOR + 90)  # a second cancel is not a second line
    assert len(kept.read_text().splitlines()) == 1
    with kept.open("a") as journal:
        journal.write('{"id": "torn')  # a crash mid-write: that cancel was never answered

    restarted = SimulatedReplicate(anchor=ANCHOR, token=TOKEN, faults=FaultPlan(), cancellations_file=kept)
    later = restarted.get(job_id, now=ANCHOR + 3000)
    assert later["status"] == "canceled" and later["completed_at"] == canceled["completed_at"]
    assert later["logs"] == canceled["logs"]
    # Without the file a restart forgets it (the story plays on): the file is what keeps it.
    forgetful = SimulatedReplicate(anchor=ANCHOR, token=TOKEN, faults=FaultPlan())
    assert forgetful.get(job_id, now=ANCHOR + 3000)["status"] != "canceled"


def test_cancel_while_starting_never_starts(sim: SimulatedReplicate) -> None:
    job_id = sim.scenario_ids["sdxl-queued"]
    assert sim.cancel(job_id, "training", now=ANCHOR + 10)["status"] == "canceled"
    job = sim.get(job_id, now=ANCHOR + 600)
    assert job["status"] == "canceled" and job["started_at"] is None and job["logs"] == ""
    assert "predict_time" not in job["metrics"]


# --------------------------------------------------------------------------- faults and counters


def test_injected_faults_answer_then_clear(client: TestClient, sim: SimulatedReplicate) -> None:
    sim.inject_faults(429, count=2)
    for _ in range(2):
        response = client.get("/v1/predictions")
        assert response.status_code == 429
        assert response.json() == {"detail": "Request was throttled. Your rate limit resets in ~1s."}
    assert client.get("/v1/predictions").status_code == 200
    sim.inject_faults(500)
    response = client.get("/v1/account")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 500
    assert client.get("/v1/account").status_code == 200
    assert sim.pending_faults == 0


def _draws(sim: SimulatedReplicate, requests: int = 300) -> list[str | None]:
    return [(fault.kind if (fault := sim.record_request("GET", "/v1/predictions")) else None) for _ in range(requests)]


def test_faults_drawn_at_a_rate_are_seeded_and_reproducible() -> None:
    plan = FaultPlan(rate=0.2, kinds=("429", "503", "timeout", "truncated"), seed=7)
    first = _draws(SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=plan))
    again = _draws(SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=plan))
    other = _draws(SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=FaultPlan(rate=0.2, seed=8)))
    assert first == again and first != other
    met = [kind for kind in first if kind is not None]
    assert 30 <= len(met) <= 90  # about a fifth of 300
    assert set(met) == {"429", "503", "timeout", "truncated"}
    # Without a seed of its own, the plan follows the simulator's seed.
    assert _draws(SimulatedReplicate(anchor=ANCHOR, history_size=0, seed=7, faults=FaultPlan(rate=0.2))) != _draws(
        SimulatedReplicate(anchor=ANCHOR, history_size=0, seed=8, faults=FaultPlan(rate=0.2))
    )


def test_a_cap_on_faults_per_url_holds_within_its_window_even_when_requests_interleave() -> None:
    now = [ANCHOR]
    plan = FaultPlan(rate=1.0, kinds=("503",), most_per_url=3, per_url_seconds=30.0)
    sim = SimulatedReplicate(anchor=ANCHOR, clock=lambda: now[0], history_size=0, faults=plan)

    def faulted(query: str) -> bool:
        return sim.record_request("GET", "/v1/trainings", query) is not None

    # Every draw is a fault: three on one URL, then none on it until the window has passed.
    assert [faulted("cursor=a") for _ in range(6)] == [True] * 3 + [False] * 3
    now[0] += 29.0
    assert not faulted("cursor=a")
    # Another URL (the query counts) has its own three, interleaved with the first URL's requests.
    assert [faulted("cursor=b"), faulted("cursor=a"), faulted("cursor=b"), faulted("cursor=b")] == [
        True,
        False,
        True,
        True,
    ]
    assert not faulted("cursor=b")
    # Past the window, the first URL's faults are forgotten one by one as they age.
    now[0] += 1.0
    assert [faulted("cursor=a") for _ in range(4)] == [True] * 3 + [False]
    # A client retrying five times meets at most three faults, whatever others ask of the same URL meanwhile.
    retries = []
    for _ in range(5):
        retries.append(faulted("cursor=c"))
        faulted("cursor=c")  # another client's request to the same page
    assert retries.count(False) >= 2
    with pytest.raises(ValueError, match="most_per_url"):
        FaultPlan(rate=0.5, most_per_url=0)
    with pytest.raises(ValueError, match="per_url_seconds"):
        FaultPlan(rate=0.5, most_per_url=3, per_url_seconds=0)


def test_a_rate_of_zero_never_faults_and_one_always_does() -> None:
    assert set(_draws(SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=FaultPlan()))) == {None}
    always = SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=FaultPlan(rate=1.0, kinds=("reset",)))
    assert set(_draws(always, 20)) == {"reset"}
    assert always.faults_met == {"reset": 20} and always.request_count() == 20


def test_injected_faults_come_before_drawn_ones_in_order() -> None:
    sim = SimulatedReplicate(anchor=ANCHOR, history_size=0, faults=FaultPlan(rate=1.0, kinds=("500",)))
    sim.inject_faults(["429-retry-after", "truncated"], count=2)
    sim.inject_faults(502)
    assert sim.pending_faults == 5
    assert _draws(sim, 6) == ["429-retry-after", "429-retry-after", "truncated", "truncated", "502", "500"]
    assert Fault("429-retry-after").status == 429 and Fault("504").status == 504 and Fault("reset").status is None


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 1.5},
        {"rate": -0.1},
        {"rate": 0.5, "kinds": ()},
        {"kinds": ("boom",)},
        {"kinds": ("200",)},
        {"kinds": ("500-ish",)},
        {"timeout_seconds": -1.0},
    ],
)
def test_a_fault_plan_refuses_what_it_cannot_inject(bad: dict) -> None:
    with pytest.raises(ValueError):
        FaultPlan(**bad)


def test_inject_faults_refuses_unknown_faults(sim: SimulatedReplicate) -> None:
    for bad in (200, "boom", ["500", "nope"]):
        with pytest.raises(ValueError):
            sim.inject_faults(bad)
    with pytest.raises(ValueError):
        sim.inject_faults(500, count=-1)
    assert sim.pending_faults == 0


def test_the_fault_plan_reads_the_environment() -> None:
    assert FaultPlan.from_env({}) == FaultPlan()
    plan = FaultPlan.from_env(
        {
            "JOBSYNC_SIMULATOR_FAULT_RATE": "0.25",
            "JOBSYNC_SIMULATOR_FAULTS": " 429-retry-after, TRUNCATED ,",
            "JOBSYNC_SIMULATOR_FAULT_SEED": "3",
            "JOBSYNC_SIMULATOR_FAULT_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert plan == FaultPlan(rate=0.25, kinds=("429-retry-after", "truncated"), seed=3, timeout_seconds=2.5)
    assert FaultPlan.from_env({"JOBSYNC_SIMULATOR_FAULT_RATE": "0.1"}).kinds == FAULT_KINDS
    for bad in ({"JOBSYNC_SIMULATOR_FAULT_RATE": "often"}, {"JOBSYNC_SIMULATOR_FAULTS": "gremlins"}):
        with pytest.raises(ValueError, match="simulator faults"):
            FaultPlan.from_env(bad)


def test_the_simulator_takes_its_fault_plan_from_the_environment_by_default(monkeypatch) -> None:
    monkeypatch.setenv("JOBSYNC_SIMULATOR_FAULT_RATE", "1")
    monkeypatch.setenv("JOBSYNC_SIMULATOR_FAULTS", "503")
    assert SimulatedReplicate(anchor=ANCHOR, history_size=0).fault_plan == FaultPlan(rate=1.0, kinds=("503",))


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("502", 502), ("503", 503), ("504", 504)])
def test_a_server_error_fault_answers_a_problem(client: TestClient, sim: SimulatedReplicate, kind, status) -> None:
    sim.inject_faults(kind)
    response = client.get("/v1/trainings")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


def test_a_throttle_answers_with_or_without_retry_after(client: TestClient, sim: SimulatedReplicate) -> None:
    sim.inject_faults(["429", "429-retry-after"])
    bare, told = client.get("/v1/predictions"), client.get("/v1/predictions")
    assert bare.status_code == told.status_code == 429
    assert bare.json() == told.json() == {"detail": "Request was throttled. Your rate limit resets in ~1s."}
    assert "retry-after" not in bare.headers and told.headers["retry-after"] == "1"


def test_a_timeout_holds_the_answer_longer_than_a_client_waits(sim: SimulatedReplicate) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = TestClient(create_app(sim, sleep=sleep), headers={"Authorization": f"Bearer {TOKEN}"})
    sim.inject_faults("timeout")
    response = client.get("/v1/predictions")
    assert waits == [sim.fault_plan.timeout_seconds] and waits[0] > 15  # jobsync's client waits 15 s
    assert response.status_code == 504
    assert client.get("/v1/predictions").status_code == 200 and waits == [30.0]


def test_a_truncated_answer_is_a_200_whose_json_stops_half_way(client: TestClient, sim: SimulatedReplicate) -> None:
    whole = client.get("/v1/predictions").content
    sim.inject_faults("truncated")
    cut = client.get("/v1/predictions")
    assert cut.status_code == 200 and cut.headers["content-type"] == "application/json"
    assert int(cut.headers["content-length"]) == len(cut.content) == len(whole) // 2
    assert whole.startswith(cut.content)
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_a_reset_announces_the_whole_answer_and_stops_half_way(client: TestClient, sim: SimulatedReplicate) -> None:
    job_id = sim.scenario_ids["flux-long"]
    whole = client.get(f"/v1/trainings/{job_id}").content
    sim.inject_faults("reset")
    cut = client.get(f"/v1/trainings/{job_id}")
    assert int(cut.headers["content-length"]) == len(whole) and len(cut.content) == len(whole) // 2
    assert whole.startswith(cut.content)


def test_a_cut_answer_is_still_refused_without_the_token(sim: SimulatedReplicate) -> None:
    sim.inject_faults("truncated")
    response = TestClient(create_app(sim)).get("/v1/account")
    assert response.status_code == 401 and response.content.startswith(b'{"title":"Unauthenticated"')


def test_requests_are_counted(client: TestClient, sim: SimulatedReplicate) -> None:
    job_id = sim.scenario_ids["flux-long"]
    client.get("/v1/predictions")
    client.get("/v1/predictions")
    client.get(f"/v1/trainings/{job_id}")
    client.post(f"/v1/trainings/{job_id}/cancel")
    TestClient(create_app(sim)).get("/v1/account")  # refused, still counted
    assert sim.request_counts[("GET", "/v1/predictions")] == 2
    assert sim.request_count("GET", "/v1/trainings/") == 1
    assert sim.request_count("POST") == 1
    assert sim.request_count() == 5
    sim.reset_request_counts()
    assert sim.request_count() == 0


# --------------------------------------------------------------------------- webhooks


def test_due_webhooks_follow_status_changes(sim: SimulatedReplicate) -> None:
    events = sim.due_webhooks(ANCHOR, ANCHOR + 300)
    by_kind = {(event.job_id, event.event) for event in events}
    ids = sim.scenario_ids
    assert (ids["sdxl-queued"], "start") in by_kind
    assert {(ids[key], "completed") for key in ("flux-finishing", "sdxl-oom", "flux-canceled")} <= by_kind
    assert (ids["flux-long"], "completed") not in by_kind
    logs_times = [event.at for event in events if event.job_id == ids["flux-long"] and event.event == "logs"]
    gaps = [later - earlier for earlier, later in zip(logs_times, logs_times[1:], strict=False)]
    assert len(logs_times) == 60 and all(gap == pytest.approx(5.0) for gap in gaps)
    # Windows that tile the time give every event exactly once.
    windows = [(ANCHOR + start, ANCHOR + min(start + 7, 300)) for start in range(0, 300, 7)]
    tiled = [event for since, until in windows for event in sim.due_webhooks(since, until)]
    assert tiled == events
    assert len({event.webhook_id for event in events}) == len(events)


def test_webhooks_verify_with_standard_webhooks(sim: SimulatedReplicate) -> None:
    from standardwebhooks.webhooks import Webhook

    events = {(event.job_id, event.event): event for event in sim.due_webhooks(ANCHOR, ANCHOR + 300)}
    ids = sim.scenario_ids
    expectations = [
        ((ids["sdxl-queued"], "start"), "processing"),
        ((ids["sdxl-oom"], "completed"), "failed"),
        ((ids["flux-finishing"], "completed"), "succeeded"),
        ((ids["flux-canceled"], "completed"), "canceled"),
    ]
    for key, status in expectations:
        event = events[key]
        headers, body = sim.webhook_request(event, timestamp=int(time.time()))
        payload = Webhook(sim.webhook_secret).verify(body, headers)
        assert payload["id"] == event.job_id and payload["status"] == status
        assert "logs" in payload
        assert headers["webhook-id"] == f"msg_{event.job_id}_{event.event}"
        assert json.loads(body) == sim.get(event.job_id, now=event.at)
    # The same event always carries the same id and body; only timestamp and signature change.
    event = events[(ids["sdxl-oom"], "completed")]
    (h1, b1), (h2, b2) = sim.webhook_request(event, timestamp=100), sim.webhook_request(event, timestamp=200)
    assert b1 == b2 and h1["webhook-id"] == h2["webhook-id"] and h1["webhook-signature"] != h2["webhook-signature"]


def test_a_cancel_through_the_api_sends_a_completed_webhook(sim: SimulatedReplicate) -> None:
    job_id = sim.scenario_ids["flux-long"]
    sim.cancel(job_id, now=ANCHOR + 100)
    events = [event for event in sim.due_webhooks(ANCHOR + 90, ANCHOR + 400) if event.job_id == job_id]
    assert events[-1] == WebhookEvent(job_id, "completed", ANCHOR + 100, f"msg_{job_id}_completed")
    assert all(event.at <= ANCHOR + 100 for event in events)


def test_the_sender_posts_signed_webhooks_and_retries_terminal_ones(sim: SimulatedReplicate) -> None:
    from jobsync.domain.webhook_signature import verify_webhook

    received: list[httpx.Request] = []
    refusals = {"left": 2}

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        payload = json.loads(request.content)
        if payload["status"] == "failed" and refusals["left"]:
            refusals["left"] -= 1
            return httpx.Response(503)
        return httpx.Response(204)

    async def run() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await deliver_due(
                sim, client, "http://hooks.test/replicate", ANCHOR + 160, ANCHOR + 175, retry_delays=(0, 0, 0)
            )

    results = asyncio.run(run())
    assert results and all(status == 204 for _, status in results)
    oom_id = sim.scenario_ids["sdxl-oom"]
    oom_attempts = [r for r in received if r.headers["webhook-id"] == f"msg_{oom_id}_completed"]
    assert len(oom_attempts) == 3  # two refusals, then accepted; same webhook-id each time
    for request in received:
        assert str(request.url) == "http://hooks.test/replicate"
        verify_webhook(sim.webhook_secret, request.headers, request.content, now=ANCHOR + 60)


def test_a_logs_webhook_is_not_retried(sim: SimulatedReplicate) -> None:
    attempts = []

    async def run() -> int | None:
        transport = httpx.MockTransport(lambda request: attempts.append(request) or httpx.Response(500))
        async with httpx.AsyncClient(transport=transport) as client:
            event = next(e for e in sim.due_webhooks(ANCHOR, ANCHOR + 10) if e.event == "logs")
            return await deliver_webhook(sim, client, "http://hooks.test/", event, retry_delays=(0, 0))

    assert asyncio.run(run()) == 500 and len(attempts) == 1


def test_the_app_runs_the_webhook_loop_in_its_lifespan(sim: SimulatedReplicate, clock: ManualClock) -> None:
    received: list[dict] = []
    transport = httpx.MockTransport(lambda request: received.append(json.loads(request.content)) or httpx.Response(200))
    app = create_app(
        sim,
        "http://hooks.test/replicate",
        webhook_interval=0.01,
        webhook_client=httpx.AsyncClient(transport=transport),
    )
    with TestClient(app):
        time.sleep(0.05)  # let the loop take its first reading of the clock
        clock.at(100)  # flux-finishing completes at ~+96
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(p["status"] == "succeeded" for p in received):
            time.sleep(0.01)
    assert any(p["id"] == sim.scenario_ids["flux-finishing"] and p["status"] == "succeeded" for p in received)


# --------------------------------------------------------------------------- the package's parts


# The scenario's documented offsets at speed 1 (scenarios.py): created, processing from, ended.
SCENARIO_OFFSETS = {
    "flux-long": (-96, -77, 1230),
    "sdxl-queued": (-7, 32, 610),
    "flux-finishing": (-558, None, 97),
    "sdxl-oom": (-136, None, 169),
    "flux-canceled": (-49, None, 229),
    "sdxl-new": (75, 97, 318),
    "flux-earlier": (None, None, -1734),
}


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_the_scenario_plays_at_its_documented_offsets(speed: float) -> None:
    from local.replicate_simulator.scenarios import SCENARIO
    from local.replicate_simulator.story import scenario_training

    assert [spec.key for spec in SCENARIO] == list(SCENARIO_OFFSETS)
    for spec in SCENARIO:
        job = scenario_training(spec, anchor=ANCHOR, speed=speed, seed=1337)
        created, started, ended = SCENARIO_OFFSETS[spec.key]
        assert job.outcome == spec.outcome and job.kind == "training"
        assert job.ended - ANCHOR == pytest.approx(ended / speed, abs=1.5), spec.key
        if created is not None:
            assert job.created - ANCHOR == pytest.approx(created / speed, abs=1.5), spec.key
        if started is not None:
            assert job.started - ANCHOR == pytest.approx(started / speed, abs=1.5), spec.key
        # Its log is written at speed 1 and played at the simulator's speed: it fills the running time.
        assert (job.ended - job.started) * job.script_speed == pytest.approx(job.script.duration, abs=1.0)


def test_a_scenario_training_is_described_by_keyword_and_checked() -> None:
    from local.replicate_simulator.scenarios import SCENARIO, ScenarioTraining
    from local.replicate_simulator.story import scenario_training

    base = {
        "key": "t",
        "model": "m/trainer",
        "log_style": "flux",
        "steps": 100,
        "steps_per_second": 2.0,
        "images": 4,
        "queue_seconds": 1.0,
    }
    with pytest.raises(TypeError):
        ScenarioTraining("t", "m/trainer", "flux", 100, 2.0, 4, 1.0, "succeeded", 5.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="starts_at or ends_at"):
        ScenarioTraining(**base, outcome="succeeded", starts_at=1.0, ends_at=2.0)
    with pytest.raises(ValueError, match="starts_at or ends_at"):
        ScenarioTraining(**base, outcome="succeeded")
    with pytest.raises(ValueError, match="needs stops_after"):
        ScenarioTraining(**base, outcome="failed", ends_at=10.0)
    with pytest.raises(ValueError, match="log style"):
        ScenarioTraining(**{**base, "log_style": "kohya"}, outcome="succeeded", starts_at=0.0)
    too_late = ScenarioTraining(**base, outcome="canceled", ends_at=10.0, stops_after=10_000.0)
    with pytest.raises(ValueError, match="before the training would"):
        scenario_training(too_late, anchor=ANCHOR, speed=1.0, seed=1)
    # The shipped scenario has every outcome and both log styles.
    assert {spec.outcome for spec in SCENARIO} == {"succeeded", "failed", "canceled"}
    assert {spec.log_style for spec in SCENARIO} == {"flux", "simpletuner"}


def test_a_stopped_training_log_ends_where_it_stopped() -> None:
    from local.replicate_simulator.scenarios import SCENARIO
    from local.replicate_simulator.story import scenario_training

    specs = {spec.key: spec for spec in SCENARIO}
    oom = scenario_training(specs["sdxl-oom"], anchor=ANCHOR, speed=1.0, seed=1337)
    # The log stops mid-training and ends with the traceback whose last line is the job's error.
    assert "CUDA out of memory" in oom.error and oom.script.text.endswith("\n" + oom.error + "\n")
    assert oom.script.text.count("Traceback (most recent call last):") == 1
    assert "Training complete" not in oom.script.text
    canceled = scenario_training(specs["flux-canceled"], anchor=ANCHOR, speed=1.0, seed=1337)
    assert canceled.script.duration == specs["flux-canceled"].stops_after
    assert "Training complete" not in canceled.script.text and canceled.output is None


def test_a_log_script_grows_like_a_terminal() -> None:
    from local.replicate_simulator.log_scripts import LogScriptWriter, tqdm_line

    writer = LogScriptWriter()
    writer.line("start")
    writer.bar(tqdm_line("train", 0, 10, 0.0), 1.0)
    writer.bar(tqdm_line("train", 5, 10, 10.0, "loss: 0.5"), 10.0)
    writer.line("checkpoint", 1.0)  # a print while a bar is up starts a fresh line
    writer.bar(tqdm_line("train", 10, 10, 20.0), 9.0)
    writer.line("never written", 5.0)
    writer.cut(21.0)
    script = writer.build()
    assert script.duration == 21.0
    assert script.at(-1) == "" and script.at(0.5) == "start\n"
    assert script.at(11.0) == "start\n\rtrain:   0%|          | 0/10 [00:00<?, ?it/s]" + (
        "\rtrain:  50%|█████     | 5/10 [00:10<00:10,  2.00s/it, loss: 0.5]"
    )
    assert script.at(12.0).endswith("loss: 0.5]\ncheckpoint\n")
    assert script.at(21.0) == script.text and script.text.endswith(
        "\rtrain: 100%|██████████| 10/10 [00:20<00:00,  2.00s/it]"
    )
    assert "never written" not in script.text


def test_cursors_and_time_filters_read_what_replicate_sends() -> None:
    from local.replicate_simulator.listing import BadRequest, decode_cursor, encode_cursor, parse_query_time, query_time

    key = (1_725_945_035_123_456_789, "rrr4z55ocneg2rdh4bh4q9c6pc")
    assert decode_cursor(encode_cursor("n", key)) == ("n", key)
    assert "=" not in encode_cursor("p", key)
    for garbage in ("!!", encode_cursor("x", key), "bi4x"):
        with pytest.raises(BadRequest, match="Invalid cursor"):
            decode_cursor(garbage)
    noon = 1_725_969_600 * 1_000_000_000  # 2024-09-10T12:00:00Z
    assert parse_query_time("2024-09-10T12:00:00Z") == noon
    assert parse_query_time("2024-09-10 14:00:00 02:00") == noon  # a `+` sent unencoded arrives as a space
    assert parse_query_time("2024-09-10T07:00-0500") == noon
    assert parse_query_time("2024-09-10T12:00:00.123456789123Z") == noon + 123_456_789
    assert parse_query_time("2024-09-10") == noon - 12 * 3600 * 1_000_000_000
    with pytest.raises(BadRequest, match="created_after must be an ISO 8601 date-time"):
        query_time("created_after", "yesterday")


def test_python_dash_m_runs_the_command_line(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", ["python -m local.replicate_simulator", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("local.replicate_simulator", run_name="__main__")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--token" in out and "--webhook-url" in out


def test_the_command_line_takes_a_fault_plan(monkeypatch) -> None:
    import uvicorn

    from local.replicate_simulator import main

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    faults = ["--fault-rate", "0.3", "--faults", "503,reset", "--fault-seed", "9"]
    main(["--port", "8002", "--token", TOKEN, *faults])
    assert served[0].state.simulator.fault_plan == FaultPlan(rate=0.3, kinds=("503", "reset"), seed=9)
    with pytest.raises(SystemExit) as refused:
        main(["--port", "8002", "--token", TOKEN, "--fault-rate", "0.3", "--faults", "gremlins"])
    assert refused.value.code == 2 and len(served) == 1
