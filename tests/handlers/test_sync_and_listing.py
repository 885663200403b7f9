"""POST /api/cloud/jobs/sync and GET /api/cloud/jobs[/{id}] through real HTTP API events."""

from __future__ import annotations

import pytest

from jobsync.api.routes import ROUTES
from tests.fakes.replicate import BASE_URL, replicate_job


def stamp(n: int) -> str:
    """Distinct creation times: a larger n is newer."""
    return f"2026-11-{1 + n // 1440:02d}T{(n // 60) % 24:02d}:{n % 60:02d}:00.000000Z"


IMPORTER = "jobsync-test-history-importer"  # tests/conftest.py's JOBSYNC_HISTORY_IMPORTER_FUNCTION


def _first_pages(monkeypatch, pages: int) -> None:
    from jobsync import wiring

    monkeypatch.setenv("JOBSYNC_SYNC_FIRST_PAGES", str(pages))
    wiring.reset()


def _import_in_background(handed_off) -> int:
    """Run the history importer's hand-offs, as Lambda would; how many invocations ran."""
    return handed_off.drain(IMPORTER, "history_importer")


@pytest.mark.parametrize("route", [r for r in ROUTES if r.authenticated], ids=lambda r: r.key)
def test_every_protected_route_answers_401_without_a_valid_token(api, route):
    status, body = api.call(route.function, authenticated=False)
    assert status == 401
    assert body["error"] == "unauthorized" and "Bearer" in body["message"]


def test_health_needs_no_token(api):
    assert api.call("health", authenticated=False) == (200, {"status": "ok"})


def test_first_sync_imports_every_page_of_both_lists(api, replicate, handed_off):
    for n in range(23):
        replicate.add(replicate_job("succeeded", created_at=stamp(n), predict_time=10.0))
    for n in range(3):
        replicate.add(replicate_job("processing", created_at=stamp(300 + n)), kind="training")

    status, body = api.call("sync_jobs")

    assert status == 200
    assert body == {
        "synced": 23,  # the first two pages of each list; the third page of predictions in the background
        "updated": 0,
        "message": "Discovered 23 new jobs from Replicate; the rest of the history is being imported in the background",
        "history_complete": False,
    }
    assert _import_in_background(handed_off) == 1
    assert replicate.count("GET", "/predictions") == 3  # 10 + 10 + 3, each page once
    status, listed = api.call("list_jobs", query={"limit": "500"})
    assert len(listed["jobs"]) == 26


def test_sync_stops_at_a_page_of_jobs_already_stored_as_terminal(api, replicate, handed_off):
    for n in range(25):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    api.call("sync_jobs")
    _import_in_background(handed_off)
    replicate.requests.clear()
    new = replicate.add(replicate_job("starting", created_at=stamp(999)))

    status, body = api.call("sync_jobs")

    assert body["synced"] == 1 and body["message"] == "Discovered 1 new jobs from Replicate"  # the contract's words
    # Page one holds the new job, so page two (all stored and ended) is read, and nothing older.
    assert replicate.count("GET", "/predictions") == 2
    assert api.call("get_job", path={"job_id": new["id"]})[1]["job"]["status"] == "queued"


def test_sync_counts_updates_honestly_and_keeps_the_final_logs(api, replicate):
    job = replicate.add(replicate_job("processing", created_at=stamp(1)))
    replicate.add(replicate_job("succeeded", created_at=stamp(0)))
    assert api.call("sync_jobs")[1]["synced"] == 2
    replicate.update(
        job["id"],
        status="succeeded",
        completed_at=stamp(5),
        metrics={"predict_time": 100.0},
        logs="Step 1000/1000 - loss: 0.01\nSaving checkpoint to /out",
    )

    status, body = api.call("sync_jobs")

    assert (body["synced"], body["updated"]) == (0, 1)
    stored = api.call("get_job", path={"job_id": job["id"]})[1]["job"]
    assert stored["status"] == "completed" and stored["cost_usd"] == pytest.approx(0.1525)
    assert replicate.requests[("GET", f"/predictions/{job['id']}")] == 1  # fetched on its own once, for the logs
    from jobsync import wiring

    assert "Saving checkpoint" in wiring.state_store().log_tail(job["id"]).text


def test_a_sync_reads_no_more_than_its_first_pages_itself(api, replicate, monkeypatch, handed_off):
    _first_pages(monkeypatch, 1)
    for n in range(40):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    assert api.call("sync_jobs")[1]["synced"] == 10
    assert replicate.count("GET", "/predictions") == 1
    assert [payload["provider"] for payload in handed_off.to(IMPORTER)] == ["replicate"]  # the rest: no cap
    _import_in_background(handed_off)
    assert api.call("metrics")[1]["job_count"] == 40


def test_sync_maps_every_replicate_status(api, replicate):
    expected = {
        "starting": "queued",
        "processing": "running",
        "succeeded": "completed",
        "failed": "failed",
        "canceled": "cancelled",
        "aborted": "cancelled",
    }
    ids = {replicate.add(replicate_job(status, created_at=stamp(n)))["id"]: status for n, status in enumerate(expected)}
    api.call("sync_jobs")
    for job_id, provider_status in ids.items():
        assert api.call("get_job", path={"job_id": job_id})[1]["job"]["status"] == expected[provider_status]


def test_sync_never_returns_secrets_from_the_providers_input(api, replicate):
    replicate.add(replicate_job("succeeded"))
    api.call("sync_jobs")
    listed = api.call("list_jobs")[1]
    assert "hf_secret_should_never_leak" not in repr(listed)


def test_sync_provider_failure_is_a_502_with_the_contract_error_shape(api, replicate):
    replicate.fail_next("GET", "/trainings", 500, 500, 500, 500, 500, 500)
    status, body = api.call("sync_jobs")
    assert status == 502 and body["error"] == "provider_error"


def test_sync_retries_a_throttled_list(api, replicate):
    replicate.add(replicate_job("succeeded"))
    replicate.fail_next("GET", "/predictions", 429)
    assert api.call("sync_jobs")[1]["synced"] == 1


def test_list_is_newest_first_and_pages_with_a_cursor(api, replicate):
    for n in range(7):
        replicate.add(replicate_job("succeeded", created_at=stamp(n), job_id=f"job-{n}"))
    api.call("sync_jobs")

    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, page = api.call("list_jobs", query=query)
        assert status == 200
        seen += [job["job_id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"job-{n}" for n in reversed(range(7))]


def test_list_filters_by_status_and_provider(api, replicate):
    replicate.add(replicate_job("succeeded", created_at=stamp(1)))
    running = replicate.add(replicate_job("processing", created_at=stamp(2)))
    api.call("sync_jobs")
    jobs = api.call("list_jobs", query={"status": "running", "provider": "replicate"})[1]["jobs"]
    assert [job["job_id"] for job in jobs] == [running["id"]]
    assert api.call("list_jobs", query={"status": "completed"})[1]["jobs"][0]["status"] == "completed"


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"status": "done"},
        {"sync_active": "maybe"},
        {"sync_active": "yes"},
        {"sync_active": "1"},
        {"sync_active": "TRUE"},
        {"limit": "5.0"},
        {"limit": "-1"},
        {"limit": " 5"},
        {"cursor": "not-a-cursor"},
        {"provider": "modal"},
    ],
)
def test_list_rejects_bad_input_with_400(api, query):
    status, body = api.call("list_jobs", query=query)
    assert status == 400 and body["error"] == "invalid_input" and body["message"]


def test_a_cursor_from_one_filter_is_refused_for_another(api, replicate):
    for n in range(3):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    api.call("sync_jobs")
    cursor = api.call("list_jobs", query={"limit": "1"})[1]["next_cursor"]
    assert api.call("list_jobs", query={"limit": "1", "status": "completed", "cursor": cursor})[0] == 400


def test_get_unknown_job_is_404(api):
    status, body = api.call("get_job", path={"job_id": "nope"})
    assert status == 404 and body["error"] == "job_not_found"


# New jobs are written 99 to a transaction; 4 here, so that a page of 10 holds several transactions.
@pytest.mark.parametrize(("total", "raced"), [(5, 2), (8, 4)], ids=["first-batch", "second-batch"])
def test_a_job_created_meanwhile_by_a_webhook_is_neither_lost_nor_counted_twice(
    api, replicate, monkeypatch, total, raced
):
    from jobsync import wiring
    from jobsync.domain.job import JobObservation
    from jobsync.domain.status import JobStatus
    from jobsync.services import job_updates
    from jobsync.services.job_updates import record_observation

    monkeypatch.setattr(job_updates, "TRANSACTION_JOBS", 4)
    jobs = [replicate.add(replicate_job("succeeded", created_at=stamp(n))) for n in reversed(range(total))]
    store = wiring.job_store()
    real_get_many = store.get_many
    arrived = []

    def get_many_then_a_webhook_arrives(ids):
        found = real_get_many(ids)
        if not arrived:
            arrived.append(
                record_observation(JobObservation(jobs[raced]["id"], "replicate", JobStatus.RUNNING, "processing"))
            )
        return found

    monkeypatch.setattr(store, "get_many", get_many_then_a_webhook_arrives)
    status, body = api.call("sync_jobs")

    assert status == 200 and body["synced"] == total - 1  # the webhook created the other one
    assert api.call("get_job", path={"job_id": jobs[raced]["id"]})[1]["job"]["status"] == "completed"
    metrics = api.call("metrics")[1]
    assert metrics["job_count"] == total and metrics["jobs_by_status"]["completed"] == total


def test_a_job_listed_twice_on_a_page_is_imported_once(api, replicate):
    job = replicate.add(replicate_job("succeeded", created_at=stamp(1)))
    replicate.predictions.append(dict(job))
    assert api.call("sync_jobs")[1]["synced"] == 1
    assert api.call("metrics")[1]["job_count"] == 1


def _cursor(index: str, key: dict) -> str:
    import base64
    import json

    raw = json.dumps({"i": index, "k": key})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        {"job_id": "", "all_jobs": "job", "created_sort": "#"},
        {"job_id": "a", "all_jobs": "job", "created_sort": ""},
        {"job_id": "a", "all_jobs": "job", "created_sort": "#b"},
        {"job_id": "a" * 2000, "all_jobs": "job", "created_sort": "#" + "a" * 2000},
        {"job_id": "\ud800", "all_jobs": "job", "created_sort": "#\ud800"},
        {"job_id": "a", "all_jobs": "job", "created_sort": "yesterday#a"},
        {"job_id": "a", "all_jobs": "job", "created_sort": "#a", "extra": "x"},
    ],
    ids=["empty-id", "empty-sort", "other-id", "too-long", "surrogate", "bad-time", "extra-attribute"],
)
def test_a_tampered_cursor_is_400_never_a_store_error(api, key):
    status, body = api.call("list_jobs", query={"cursor": _cursor("by_created", key)})
    assert status == 400 and body["error"] == "invalid_input"


def test_a_well_formed_cursor_of_our_own_shape_is_accepted(api):
    key = {"job_id": "a", "all_jobs": "job", "created_sort": "2026-11-01T10:00:00.000000Z#a"}
    assert api.call("list_jobs", query={"cursor": _cursor("by_created", key)})[0] == 200


def test_a_history_import_that_failed_half_way_is_finished_by_the_next_sync(api, replicate, handed_off):
    for n in range(50):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    import httpx

    original = replicate._page
    failures_left = [5]  # every attempt the client makes in the importer's run

    def third_page_fails(request, collection, jobs):
        if collection == "predictions" and request.url.params.get("cursor") == "20" and failures_left[0]:
            failures_left[0] -= 1
            return httpx.Response(500, json={"detail": "boom"})
        return original(request, collection, jobs)

    replicate._page = third_page_fails
    assert api.call("sync_jobs")[1]["synced"] == 20  # pages 1 and 2
    _import_in_background(handed_off)  # page 3 failed: the import pauses where it was
    assert api.call("metrics")[1]["job_count"] == 20

    status, body = api.call("sync_jobs")  # finds the paused import and starts it again
    _import_in_background(handed_off)

    assert status == 200 and body["synced"] == 0 and body["history_complete"] is False
    assert api.call("metrics")[1]["job_count"] == 50
    replicate.requests.clear()
    assert api.call("sync_jobs")[1] == {
        **body,
        "history_complete": True,
        "message": "Discovered 0 new jobs from Replicate",
    }
    assert replicate.count("GET", "/predictions") == 1  # history imported: the newest page is enough now


def test_a_sync_short_of_time_answers_in_time_and_the_next_one_goes_on(api, replicate):
    from tests.conftest import LambdaContext

    for n in range(3):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    api.context = LambdaContext(remaining_ms=6_500)  # not enough left to read and store a page

    status, body = api.call("sync_jobs")

    assert status == 200 and body["synced"] == 0 and replicate.count("GET") == 0
    api.context = LambdaContext()
    assert api.call("sync_jobs")[1]["synced"] == 3


def test_a_job_new_while_the_history_imports_is_taken_by_the_next_sync_and_nothing_twice(api, replicate, handed_off):
    for n in range(45):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    found = [api.call("sync_jobs")[1]["synced"]]
    new = replicate.add(replicate_job("starting", created_at=stamp(999)))
    found.append(api.call("sync_jobs")[1]["synced"])  # the import has not run yet
    _import_in_background(handed_off)
    found.append(api.call("sync_jobs")[1]["synced"])

    assert found == [20, 1, 0]
    assert api.call("metrics")[1]["job_count"] == 46
    assert api.call("get_job", path={"job_id": new["id"]})[1]["job"]["status"] == "queued"


def test_a_list_whose_next_page_leads_back_to_itself_ends_the_walk(api, replicate):
    import httpx

    def loops(request, collection, jobs):
        cursor = request.url.params.get("cursor", "0")
        return httpx.Response(200, json={"results": [], "next": f"{BASE_URL}/{collection}?cursor={cursor}"})

    replicate._page = loops
    status, body = api.call("sync_jobs")
    assert status == 200 and body["synced"] == 0
    assert replicate.count("GET") <= 4  # two lists, at most two pages each


def test_a_cap_that_takes_nothing_is_refused_at_start():
    from jobsync.config import ConfigError, settings_from_env

    with pytest.raises(ConfigError, match="sync_cap_per_list"):
        settings_from_env({"JOBSYNC_SYNC_CAP": "0"})
